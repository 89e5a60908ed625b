"""GrowthBook's evaluation semantics for single values, as core.conditions' closures use them.

Each function mirrors its namesake in the `growthbook` package (growthbook.core): JSON
types (a bool is not a number), JS `===` and `String(number)`, JS string order (UTF-16
code units), padded version strings, and `isIn`'s array overlap. Kept apart from the
compiler so that each module holds one idea.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable
from typing import Any

NUMBER = (int, float)
_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$vlt": operator.lt,
    "$vlte": operator.le,
    "$vgt": operator.gt,
    "$vgte": operator.ge,
    "$veq": operator.eq,
    "$vne": operator.ne,
}


def get_type(value: object) -> str:
    """GrowthBook's getType: null, boolean, number, string, array, object (else unknown)."""
    return _TYPE_NAMES.get(type(value), "unknown")


def is_number(value: object) -> bool:
    return type(value) in NUMBER


def _is_array_index(key: str, length: int) -> bool:
    return len(key) <= 10 and key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < length


def segment(current: object, segment: str) -> Any:
    if type(current) is dict:
        return current.get(segment)
    if type(current) is list:
        if segment == "length":
            return len(current)
        if _is_array_index(segment, len(current)):
            return current[int(segment)]
    return None


def getter(path: str) -> Callable[[Any], Any]:
    """GrowthBook's getPath for one dotted path, split once."""
    segments = path.split(".")
    if len(segments) == 1:
        key = segments[0]
        return lambda obj: obj.get(key) if type(obj) is dict else segment(obj, key)

    def get(obj: Any) -> Any:
        for part in segments:
            obj = segment(obj, part)
            if obj is None:
                return None
        return obj

    return get


def _js_key_order(obj: dict[Any, Any]) -> list[Any]:
    keys = list(obj)
    indices = [k for k in keys if isinstance(k, str) and _is_array_index(k, 2**32 - 1)]
    return sorted(indices, key=int) + [k for k in keys if k not in indices]


def strict_deep_equal(a: Any, b: Any) -> bool:
    """Implicit equality: same JSON types all the way down (True != 1; 1.0 == 1), JS key order."""
    kind = get_type(a)
    if kind != get_type(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(strict_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "object":
        return _js_key_order(a) == _js_key_order(b) and all(strict_deep_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def js_strict_equal(a: Any, b: Any) -> bool:
    """`===` between JSON values from separate parses: containers are never equal."""
    kind = get_type(a)
    if kind != get_type(b) or kind in ("array", "object"):
        return False
    return bool(a == b)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def compare_strings(a: str, b: str) -> int:
    """JS string order (UTF-16 code units), which differs from code points above U+FFFF."""
    if not (a.isascii() and b.isascii()):
        a_units, b_units = _utf16(a), _utf16(b)
        return (a_units > b_units) - (a_units < b_units)
    return (a > b) - (a < b)


def js_number_to_string(value: float) -> str:  # noqa: PLR0911 - one return per JS layout
    """JS `String(number)`: shortest round-trip digits, fixed for exponents -7 < e < 21."""
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    if x == float("inf"):
        return "Infinity"
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    padded = (whole + fraction).lstrip("0")
    digits = padded.rstrip("0")
    k = len(digits)
    n = int(exponent or "0") - len(fraction) + len(padded)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return head + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))


_VERSION_STRIP = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT = re.compile(r"[-.]")


@functools.lru_cache(maxsize=4096)
def padded_version_text(text: str) -> str:
    parts = _VERSION_SPLIT.split(_VERSION_STRIP.sub("", text))
    if len(parts) == 3:
        parts.append("~")  # a release sorts after its pre-releases
    return "-".join(p.rjust(5, " ") if p.isdigit() else p for p in parts)


def padded_version(value: Any) -> str:
    """GrowthBook's paddedVersionString: versions made comparable as plain strings."""
    if is_number(value):
        value = js_number_to_string(value)
    if not value or not isinstance(value, str):
        value = "0"
    return padded_version_text(value)


def _contains_bool_or_number(values: list[Any], value: Any) -> bool:
    """0/1 versus False/True without Python's bool == int aliasing."""
    return any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in values)


def is_in(values: list[Any], actual: Any, insensitive: bool = False) -> bool:
    """GrowthBook's isIn: membership, or any overlap when the attribute is an array."""
    if insensitive:
        fold = [v.lower() if isinstance(v, str) else v for v in values]
        items = actual if isinstance(actual, list) else [actual]
        return any(js_strict_equal(a.lower() if isinstance(a, str) else a, v) for a in items for v in fold)
    if isinstance(actual, list):
        return any(js_strict_equal(a, v) for a in actual for v in values)
    if isinstance(actual, dict):
        return False
    if actual is None:
        return any(v is None for v in values)
    if actual in {0, 1}:
        return _contains_bool_or_number(values, actual)
    return actual in values


_LITERAL_PATTERN = re.compile(r"(\^?)((?:[^.^$*+?()\[\]{}|\\]|\\[^A-Za-z0-9])*)(\$?)")
_ESCAPE = re.compile(r"\\(.)")


def literal_search(pattern: str) -> Callable[[str], bool] | None:
    """A str method doing what RE2 does for a pattern that is only literal text with an
    optional ^ and $ (`@example\\.com$`, `^/checkout`): about 10x cheaper than a call
    into RE2, and targeting patterns are mostly of this kind. None for any other pattern."""
    shape = _LITERAL_PATTERN.fullmatch(pattern)
    if shape is None or "\n" in pattern:
        return None
    start, text, end = bool(shape[1]), _ESCAPE.sub(r"\1", shape[2]), bool(shape[3])
    if start and end:
        return lambda value: value == text
    if start:
        return lambda value: value.startswith(text)
    if end:
        return lambda value: value.endswith(text)
    return lambda value: text in value


_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_NEVER = r"[^\x00-\x{10FFFF}]"  # JS `[]`: a class that matches nothing
_ANY = r"[\x00-\x{10FFFF}]"  # JS `[^]`: any character, newlines included


def js_regex_for_re2(pattern: str) -> str:
    """A JavaScript pattern (GrowthBook's JS SDK, the reference) rewritten so that RE2 reads
    it the same way: `\\uXXXX` becomes `\\x{XXXX}` (RE2 has no `\\u`), a `[` inside a class
    is a literal (`[[:digit:]]` is `[[:digit:]` then `]` in JS, a POSIX class in RE2), and
    JS's empty classes `[]` and `[^]` keep their meaning. Anything else is left to RE2."""
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            if escaped == "u" and _HEX4.fullmatch(pattern, i + 2, i + 6):
                out.append(f"\\x{{{pattern[i + 2 : i + 6]}}}")
                i += 6
                continue
            out.append("u" if escaped == "u" else char + escaped)  # JS: `\u` not before 4 hex digits is "u"
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            out.append("\\[" if char == "[" else char)
        elif char == "[":
            negated = pattern.startswith("^", i + 1)
            after = i + 2 if negated else i + 1
            if pattern.startswith("]", after):  # JS's `[]` / `[^]`, where RE2 would read a `]` member
                out.append(_ANY if negated else _NEVER)
                i = after + 1
                continue
            in_class = True
            out.append("[^" if negated else "[")
            i = after
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)
