"""The experiment file and the GrowthBook import describe a bad value in the same words."""

from __future__ import annotations

import pytest

from assignsvc.documents.experiment_file import read_experiments
from assignsvc.documents.growthbook import from_growthbook
from assignsvc.documents.reading import show
from assignsvc.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"a": 1}, "a mapping"),
        ([1, 2], "a list"),
        (None, "null"),
        (True, "true"),
        (2**80, "a number too large"),
        (3, "3"),
        ("x" * 100, repr("x" * 100)[:37] + "..."),
    ],
)
def test_show(value: object, shown: str) -> None:
    assert show(value) == shown


def test_a_huge_number_is_shown_without_printing_it() -> None:
    assert show(10**5000) == "a number too large"  # repr() refuses ints this long


def test_both_front_ends_word_a_non_string_alike() -> None:
    with pytest.raises(InvalidArgumentError) as from_file:
        read_experiments("id: [1]\narms: [{id: a, weight: 1}]\n")
    with pytest.raises(InvalidArgumentError) as from_json:
        from_growthbook({"key": [1], "variations": [1, 2]})
    (file_violation,) = [v for v in from_file.value.violations if v.field == "id"]
    (json_violation,) = [v for v in from_json.value.violations if v.field == "key"]
    assert file_violation.description == "must be a string, got a list (put it in quotes) (line 1)"
    assert json_violation.description == "must be a string, got a list (put it in quotes)"
