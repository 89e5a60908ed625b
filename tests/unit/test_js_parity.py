"""Regular expressions in conditions agree with GrowthBook's JS SDK, the reference where
the SDKs disagree (docs/targeting.md lists what still differs: $notRegex, which the JS SDK
lacks, non-string attributes, version operators on non-strings). Runs `node` on the
@growthbook/growthbook package installed by `npm install --prefix tests/support/js`;
skipped, saying so, where node or the package is absent."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from assignsvc.core.conditions import compile_condition
from tests.support import condition_gen as gen

JS = Path(__file__).parents[1] / "support" / "js"
GROUPS = {name: frozenset(ids) for name, ids in gen.GROUPS.items()}

if shutil.which("node") is None:
    pytest.skip("node is not installed: the JS SDK cannot run here", allow_module_level=True)
if not (JS / "node_modules" / "@growthbook" / "growthbook").is_dir():
    pytest.skip(
        "@growthbook/growthbook is not installed: npm install --prefix tests/support/js", allow_module_level=True
    )

# Patterns where RE2, Python's re and JS read differently (docs/targeting.md), each with texts
# that tell the readings apart.
REGEX_CASES = {
    "\\u00e9": ["café", "cafe", "\\u00e9"],
    "[\\u0041-\\u005A]+$": ["ABC", "abc", "u0041"],
    "^\\u0063": ["c", "u0063"],
    "\\\\u0041": ["\\u0041", "A"],
    "\\u12": ["u12", "\\u12"],
    "[[:digit:]]": ["5", "d]", ":]", "[]", "x"],
    "[^[:alpha:]]": ["x", "5]", "a]"],
    "[[a]]": ["a]", "[]", "a"],
    "a[]b": ["ab", "a]b"],
    "a[^]b": ["a\nb", "axb", "ab"],
    "[a\\]b]": ["]", "a", "c"],
    "x{,2}": ["x{,2}", "xx", ""],
    "^\\d+$": ["123", "\u0663"],
    "^\\w+$": ["abc", "é"],
}


def js_eval(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[bool]:
    """The JS SDK's evalCondition on each (condition, attributes) pair, in one node run."""
    ran = subprocess.run(
        ["node", str(JS / "eval_conditions.js"), json.dumps(gen.GROUPS)],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return list(json.loads(ran.stdout))


def disagreements(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    theirs = js_eval(pairs)
    out = []
    for (condition, attributes), js in zip(pairs, theirs, strict=True):
        ours = compile_condition(condition)(attributes, GROUPS)
        if ours is not js:
            out.append(f"{json.dumps(condition)} on {json.dumps(attributes)}: ours {ours}, JS {js}")
    return out


def test_regexes_read_as_javascript_reads_them() -> None:
    pairs = [
        ({"a": {op: pattern}}, {"a": text})
        for pattern, texts in REGEX_CASES.items()
        for text in texts
        for op in ("$regex", "$regexi")
    ]
    assert disagreements(pairs) == []
    assert 0 < sum(js_eval(pairs)) < len(pairs)  # the cases tell matches from non-matches


def test_random_patterns_on_strings() -> None:
    rng = random.Random(11)
    patterns = [*gen.REGEXES, *REGEX_CASES]
    pairs = [
        ({"a": {rng.choice(("$regex", "$regexi")): rng.choice(patterns)}}, {"a": rng.choice(gen.STRINGS)})
        for _ in range(3000)
    ]
    assert disagreements(pairs) == []
