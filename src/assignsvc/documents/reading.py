"""Typed reads of untrusted documents, shared by the experiment file and the GrowthBook import.

Why shared: both front ends report a wrong value the same way (its field, what it must
be, a short view of what was found), so a user sees one wording for YAML and JSON.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

from assignsvc.errors import FieldViolation

# Longer views of a bad value are cut (an error message names the value, not the document).
MAX_SHOWN = 40


def show(value: object) -> str:
    """A short view of a bad value for an error message: the kind of a container or of a
    number too large to print, JSON's spelling of null and booleans, else its repr."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int) and value.bit_length() > 64:  # repr() refuses very long ints
        return "a number too large"
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


class Reader:
    """Records every problem with its field, raises none: a document's user sees them all."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def field(self, where: str) -> str:
        """The violation's field for `where` (a front end may prefix or default it)."""
        return where

    def bad(self, where: str, description: str) -> None:
        """Record one problem."""
        self.violations.append(FieldViolation(self.field(where), description))

    def given_text(self, value: object, where: str) -> str | None:
        """A value that is there, as a string; None (and a violation) if it is not one."""
        if isinstance(value, str):
            return value
        self.bad(where, f"must be a string, got {show(value)} (put it in quotes)")
        return None

    def given_number(self, value: object, where: str) -> float | None:
        """A value that is there, as a float; None (and a violation) if it is not a number."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(where, f"must be a number, got {show(value)}")
            return None
        try:
            return float(value)
        except OverflowError:
            self.bad(where, "is too large")
            return None
