"""Random GrowthBook conditions and attributes for the parity tests and the benchmark.

Values come from small pools so that conditions often hit (and often miss) the
attributes; every operator is produced with well-typed and ill-typed arguments.
"""

from __future__ import annotations

import random
from typing import Any

STRINGS = ["", "a", "b", "A", "abc", "alpha", "zebra", "1", "10", "2", "é", "\U0001f600", "\uff21", "true", "null"]
NUMBERS: list[Any] = [0, 1, -1, 2, 2.5, 10, 1e21, -0.5, 100]
VERSIONS = ["1.0.0", "1.2.3", "v1.2.3", "1.10.0", "1.2.3-beta", "1.2.3-rc.1", "2", "1.2", "1.2.3+build", "10.0.0"]
GROUPS = {"beta": ["a", "b", "abc"], "staff": ["alpha", "1"], "empty": []}
PATHS = [
    "s",
    "n",
    "b",
    "tags",
    "nums",
    "obj",
    "obj.x",
    "obj.y.z",
    "v",
    "nul",
    "missing",
    "tags.0",
    "tags.length",
    "objs",
]
OPERATORS = [
    "$eq",
    "$ne",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$in",
    "$nin",
    "$ini",
    "$nini",
    "$all",
    "$alli",
    "$elemMatch",
    "$size",
    "$exists",
    "$type",
    "$regex",
    "$regexi",
    "$notRegex",
    "$notRegexi",
    "$not",
    "$veq",
    "$vne",
    "$vgt",
    "$vgte",
    "$vlt",
    "$vlte",
    "$inGroup",
    "$notInGroup",
]
LOGICAL = ["$and", "$or", "$nor", "$not"]
REGEXES = ["^a", "b$", "(Mobile|Tablet)", "^[0-9]+$", "a.c", "", "^$", "z", "[é]", "A"]
TYPES = ["string", "number", "boolean", "null", "array", "object", "undefined"]


def scalar(rng: random.Random) -> Any:
    """A JSON scalar from the pools."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    return rng.choice(VERSIONS)


def value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, shallow."""
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind < 5:
        return scalar(rng)
    if kind < 7:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["x", "y", "z", "0"]): value(rng, depth + 1) for _ in range(rng.randrange(3))}


def attributes(rng: random.Random) -> dict[str, Any]:
    """An attributes object: typed keys usually of their type, sometimes anything, sometimes absent."""
    typed: dict[str, Any] = {
        "s": lambda: rng.choice(STRINGS),
        "n": lambda: rng.choice(NUMBERS),
        "b": lambda: rng.choice([True, False]),
        "tags": lambda: [rng.choice([*STRINGS, 1, 0, True]) for _ in range(rng.randrange(4))],
        "nums": lambda: [rng.choice([*NUMBERS, None]) for _ in range(rng.randrange(4))],
        "obj": lambda: {"x": scalar(rng), "y": {"z": scalar(rng)} if rng.random() < 0.7 else scalar(rng)},
        "v": lambda: rng.choice(VERSIONS + NUMBERS[:4]),
        "nul": lambda: None,
        "objs": lambda: [{"x": scalar(rng)} if rng.random() < 0.8 else scalar(rng) for _ in range(rng.randrange(3))],
    }
    out: dict[str, Any] = {}
    for key, make in typed.items():
        roll = rng.random()
        if roll < 0.75:
            out[key] = make()
        elif roll < 0.9:
            out[key] = value(rng)
    return out


def operator_argument(rng: random.Random, op: str, depth: int) -> Any:  # noqa: PLR0911 - one case per operator
    """A valid argument for `op` (right or wrong type for the attribute it meets)."""
    if op in ("$in", "$nin", "$ini", "$nini"):
        return [scalar(rng) for _ in range(rng.randrange(4))]
    if op in ("$all", "$alli"):
        return [value_condition(rng, depth + 1) if rng.random() < 0.3 else scalar(rng) for _ in range(rng.randrange(3))]
    if op == "$elemMatch":
        if rng.random() < 0.5:
            return operator_object(rng, depth + 1)
        return condition(rng, depth + 1, paths=["x", "y", "0", "missing"])
    if op == "$size":
        return rng.choice([0, 1, 2, 3]) if rng.random() < 0.6 else operator_object(rng, depth + 1, ("$gt", "$lte"))
    if op == "$exists":
        return rng.choice([True, False, 0, 1, "", "x"])
    if op == "$type":
        return rng.choice(TYPES)
    if op == "$not":
        return value_condition(rng, depth + 1)
    if op.startswith(("$regex", "$notRegex")):
        return rng.choice(REGEXES)
    if op.startswith("$v"):
        return rng.choice(VERSIONS + NUMBERS[:4]) if rng.random() < 0.95 else rng.choice([True, None])
    if op in ("$inGroup", "$notInGroup"):
        return rng.choice([*GROUPS, "unknown"])
    return value(rng) if rng.random() < 0.15 else scalar(rng)


def operator_object(rng: random.Random, depth: int, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """{op: arg, ...} with 1-2 operators."""
    pool = list(only) or (
        OPERATORS if depth < 3 else [o for o in OPERATORS if o not in ("$not", "$elemMatch", "$all", "$alli", "$size")]
    )
    ops = rng.sample(pool, rng.choice([1, 1, 2]))
    return {op: operator_argument(rng, op, depth) for op in ops}


def value_condition(rng: random.Random, depth: int) -> Any:
    """An operator object, or a literal (implicit equality)."""
    return operator_object(rng, depth) if rng.random() < 0.8 else value(rng)


def condition(rng: random.Random, depth: int = 0, paths: list[str] | None = None) -> dict[str, Any]:
    """A condition: 1-3 entries, paths or logical operators."""
    out: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 2, 3])):
        if depth < 3 and rng.random() < 0.25:
            op = rng.choice(LOGICAL)
            if op == "$not":
                out[op] = condition(rng, depth + 1, paths)
            else:
                out[op] = [condition(rng, depth + 1, paths) for _ in range(rng.randrange(3))]
        else:
            out[rng.choice(paths or PATHS)] = value_condition(rng, depth + 1)
    return out


def operators_in(node: object) -> set[str]:
    """Every $-key used anywhere in a condition."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, item in node.items():
            if isinstance(key, str) and key.startswith("$"):
                found.add(key)
            found |= operators_in(item)
    elif isinstance(node, list):
        for item in node:
            found |= operators_in(item)
    return found
