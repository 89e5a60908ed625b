"""The compiled condition evaluator agrees with the growthbook package's evalCondition."""

from __future__ import annotations

import json
import random
import time
import warnings
from typing import Any

import pytest
import re2
from growthbook.core import _js_number_to_string, evalCondition
from hypothesis import given, settings
from hypothesis import strategies as st

from assignsvc.core.condition_values import js_number_to_string, literal_search
from assignsvc.core.conditions import (
    ConditionError,
    canonical_text,
    compile_condition,
    parse_condition,
    referenced_groups,
)
from tests.support import condition_gen as gen

GROUPS = {name: frozenset(ids) for name, ids in gen.GROUPS.items()}


def _disagreements(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    out = []
    for condition, attributes in pairs:
        ours = compile_condition(condition)(attributes, GROUPS)
        theirs = evalCondition(attributes, condition, dict(gen.GROUPS))
        if ours is not theirs:
            out.append(f"{json.dumps(condition)} on {json.dumps(attributes)}: ours {ours}, growthbook {theirs}")
    return out


class TestParityWithGrowthBook:
    """Every generated (condition, attributes) pair gets GrowthBook's answer."""

    def test_each_operator_alone(self) -> None:
        rng = random.Random(20261122)
        outcomes: dict[str, set[bool]] = {}
        pairs = []
        for op in gen.OPERATORS:
            for _ in range(400):
                condition = {rng.choice(gen.PATHS): {op: gen.operator_argument(rng, op, 1)}}
                attributes = gen.attributes(rng)
                pairs.append((condition, attributes))
                outcomes.setdefault(op, set()).add(evalCondition(attributes, condition, dict(gen.GROUPS)))
        assert len(pairs) == 11_600
        assert _disagreements(pairs) == []
        # every operator was seen both matching and not matching
        assert {op for op, seen in outcomes.items() if seen == {True, False}} == set(gen.OPERATORS)

    def test_nested_conditions(self) -> None:
        rng = random.Random(7)
        pairs = []
        used: set[str] = set()
        for _ in range(4000):
            condition = gen.condition(rng)
            used |= gen.operators_in(condition)
            pairs += [(condition, gen.attributes(rng)) for _ in range(3)]
        assert len(pairs) == 12_000
        assert set(gen.OPERATORS) | set(gen.LOGICAL) <= used
        matched = sum(evalCondition(a, c, dict(gen.GROUPS)) for c, a in pairs)
        assert 0.1 < matched / len(pairs) < 0.5  # neither side is trivially constant
        assert _disagreements(pairs) == []

    @settings(max_examples=300, deadline=None)
    @given(st.randoms(use_true_random=False))
    def test_property(self, rng: random.Random) -> None:
        condition = gen.condition(rng)
        assert _disagreements([(condition, gen.attributes(rng)) for _ in range(5)]) == []

    def test_js_number_formatting(self) -> None:
        rng = random.Random(3)
        numbers = [0.1, 1e21, 1e-7, 123456789012345680000.0, 1.5e-6, -0.0, 5e-324, 2**53, 12.0]
        numbers += [rng.uniform(-1e25, 1e25) * 10 ** rng.randrange(-30, 5) for _ in range(2000)]
        assert [js_number_to_string(x) for x in numbers] == [_js_number_to_string(x) for x in numbers]


class TestSemantics:
    """Hand-picked cases in the spirit of GrowthBook's cases.json, pinned to the package's answers."""

    @pytest.mark.parametrize(
        ("condition", "attributes", "expected"),
        [
            (
                {"father.age": {"$gt": 65}, "$or": [{"bday": {"$regex": "-12-25$"}}, {"name": "santa"}]},
                {"name": "santa", "bday": "1980-12-20", "father": {"age": 70}},
                True,
            ),
            ({"pets.dog.name": {"$exists": False}}, {"hello": "world"}, True),
            ({"n": {"$gt": 5, "$lt": 10}}, {"n": "8"}, False),  # growthbook 4: numbers and strings never compare
            ({"version": {"$vgt": "1.2.3-beta"}}, {"version": "1.2.3"}, True),
            ({"version": {"$vlt": "1.10.0"}}, {"version": "1.9.9"}, True),
            ({"tags": {"$in": ["a", "b"]}}, {"tags": ["d", "b"]}, True),
            ({"tags": {"$nin": ["a", "b"]}}, {"tags": []}, True),
            ({"objs": {"$elemMatch": {"x": {"$gt": 1}}}}, {"objs": [{"x": 0}, {"x": 2}]}, True),
            ({"tags.length": 2}, {"tags": ["a", "b"]}, True),
            ({"obj": {"a": 1, "b": 2}}, {"obj": {"b": 2, "a": 1}}, False),  # JS property order, as GrowthBook
            ({"id": {"$inGroup": "beta"}}, {"id": "abc"}, True),
            ({"id": {"$notInGroup": "unknown"}}, {"id": "abc"}, True),
            ({"$nor": []}, {}, False),
            ({"flag": True}, {"flag": 1}, False),
        ],
    )
    def test_case(self, condition: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
        assert evalCondition(attributes, condition, dict(gen.GROUPS)) is expected
        assert compile_condition(condition)(attributes, GROUPS) is expected


class TestCompileErrors:
    """A condition GrowthBook would silently evaluate to false is refused, naming its path."""

    @pytest.mark.parametrize(
        ("condition", "path"),
        [
            ({"$and": [{"a": 1}, {"country": {"$regex": "(unclosed"}}]}, "$and[1].country.$regex"),
            ({"a": {"$regex": "(a)\\1"}}, "a.$regex"),  # a backreference: RE2 has none
            ({"a": {"$regex": "(?=x)"}}, "a.$regex"),  # lookahead
            ({"a": {"$gtx": 1}}, "a.$gtx"),
            ({"$where": "x"}, "$where"),
            ({"a": {"$in": 1}}, "a.$in"),
            ({"$or": {"a": 1}}, "$or"),
            ({"$or": [1]}, "$or[0]"),
            ({"$not": [1]}, "$not"),
            ({"a": {"$elemMatch": 3}}, "a.$elemMatch"),
            ({"a": {"$inGroup": 3}}, "a.$inGroup"),
            ({"a..b": 1}, "a..b"),
            ({"a": {"$all": [{"$bad": 1}]}}, "a.$all[0].$bad"),
        ],
    )
    def test_path_named(self, condition: object, path: str) -> None:
        with pytest.raises(ConditionError) as caught:
            compile_condition(condition)
        assert caught.value.path == path
        assert str(caught.value).startswith(path + ": ")

    def test_not_an_object(self) -> None:
        with pytest.raises(ConditionError, match="must be an object"):
            parse_condition("[1, 2]")

    def test_not_json(self) -> None:
        with pytest.raises(ConditionError, match="not valid JSON"):
            parse_condition("{country: US}")

    def test_too_deep(self) -> None:
        deep: dict[str, Any] = {"a": 1}
        for _ in range(40):
            deep = {"$not": deep}
        with pytest.raises(ConditionError, match="nested deeper"):
            compile_condition(deep)

    def test_too_large(self) -> None:
        with pytest.raises(ConditionError, match="at most 65536 bytes"):
            parse_condition(json.dumps({"a": {"$in": ["x" * 100] * 700}}))


class TestRegexGuard:
    """A pattern that backtracks catastrophically in Python's re stays linear on RE2."""

    def test_nested_quantifier_is_fast(self) -> None:
        matches = compile_condition({"ua": {"$regex": "^(a+)+$"}})
        started = time.perf_counter()
        assert matches({"ua": "a" * 16_000 + "!"}, GROUPS) is False  # re would take longer than the universe
        assert time.perf_counter() - started < 0.5


class TestLiteralFastPath:
    """A literal pattern (with ^ / $) answered by str methods gives RE2's answer."""

    @settings(max_examples=500, deadline=None)
    @given(
        st.from_regex(r"\^?(?:[a-c.@$^]|\\[.$^@])*\$?", fullmatch=True), st.text(alphabet="abc.@$^\u00e9", max_size=8)
    )
    def test_same_as_re2(self, pattern: str, text: str) -> None:
        fast = literal_search(pattern)
        try:
            engine = re2.compile(pattern)
        except re2.error:
            return  # not a pattern at all: refused at compile time, no fast path is ever used
        if fast is not None:
            assert fast(text) is (engine.search(text) is not None)

    def test_used_for_literals_only(self) -> None:
        assert literal_search("@example\\.com$") is not None
        assert literal_search("a.c") is None and literal_search("a+") is None and literal_search("\\d") is None


class TestText:
    """Condition text: empty means none, stored compact in the given key order, groups found."""

    def test_empty_is_none(self) -> None:
        assert parse_condition("") is None
        assert parse_condition(" {} ") is None
        assert canonical_text(" {} ") == ""

    def test_canonical(self) -> None:
        assert canonical_text('{ "b": 1, "a": {"$in": ["é"]} }') == '{"b":1,"a":{"$in":["é"]}}'

    def test_referenced_groups(self) -> None:
        text = '{"$or": [{"id": {"$inGroup": "beta"}}, {"x": {"$not": {"$notInGroup": "staff"}}}]}'
        assert referenced_groups(text) == {"beta", "staff"}


class TestJavaScriptRegexes:
    """Patterns that RE2 reads differently from JavaScript, rewritten to JS's meaning
    (GrowthBook's JS SDK is the reference; the Python SDK agrees except where noted)."""

    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            ("\\u00e9", "café", True),  # refused at create before ("invalid escape sequence")
            ("[\\u0041-\\u005A]", "Q", True),
            ("[\\u0041-\\u005A]", "q", False),
            ("^\\u0063af\\u00E9$", "café", True),
            ("\\\\u0041", "\\u0041", True),  # an escaped backslash, then a plain "u0041"
            ("[[:digit:]]", "5", False),  # JS: the class [[:digit:] then a literal ]
            ("[[:digit:]]", "d]", True),
            ("[[:digit:]]", ":]", True),
            ("[^[:alpha:]]", "x", False),
            ("[^[:alpha:]]", "5]", True),
            ("[a\\]b]", "]", True),
            ("a[]b", "ab", False),  # JS's empty class matches nothing
        ],
    )
    def test_agrees_with_growthbook(self, pattern: str, text: str, expected: bool) -> None:
        condition = {"a": {"$regex": pattern}}
        assert compile_condition(condition)({"a": text}, GROUPS) is expected
        with warnings.catch_warnings():  # Python's re warns about "[[" (a possible nested set)
            warnings.simplefilter("ignore", FutureWarning)
            assert evalCondition({"a": text}, condition, {}) is expected

    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            ("a[^]b", "a\nb", True),  # JS: [^] is any character; Python's re reads [^]b] instead
            ("\\u12", "u12", True),  # JS: \u not before 4 hex digits is "u"; Python's re refuses it
        ],
    )
    def test_where_the_python_sdk_differs_js_decides(self, pattern: str, text: str, expected: bool) -> None:
        assert compile_condition({"a": {"$regex": pattern}})({"a": text}, GROUPS) is expected
