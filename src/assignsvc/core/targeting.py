"""Who an experiment is for and who a participant is: the condition and the hash attribute.

`TargetingPlan` is compiled once per stored experiment (beside the BucketPlan), so the
Assign path calls a closure and reads one attribute, and parses nothing. An experiment
with neither a condition nor a hash attribute has an empty plan, and then the path is
exactly what it was before targeting existed: the same arms for everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from assignsvc.core.condition_values import js_number_to_string
from assignsvc.core.conditions import Condition, ConditionError, parse_condition
from assignsvc.core.model import Experiment
from assignsvc.core.scoping import datasource_of

EMPTY_ATTRIBUTES: dict[str, Any] = {}


def hash_value(value: object) -> str | None:
    """An attribute value as GrowthBook hashes it (JS `String()`), or None when it cannot
    identify anyone: only non-empty strings and finite, non-zero numbers can (not booleans)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        usable = value != 0 and math.isfinite(value)
    except OverflowError:  # an int too large for a double is Infinity in JS
        return None
    return js_number_to_string(value) if usable else None


@dataclass(frozen=True, slots=True)
class TargetingPlan:
    """An experiment's condition compiled, and which attribute identifies a participant."""

    condition: Condition | None
    hash_attribute: str
    fallback_attribute: str

    @classmethod
    def compile(cls, experiment: Experiment) -> TargetingPlan:
        """Compile the stored condition (validated when stored, so it compiles).

        A condition this version cannot compile (written by a newer replica during a
        rolling upgrade) matches nobody rather than everybody.
        """
        try:
            condition = parse_condition(experiment.condition, datasource_of(experiment.id))
        except ConditionError:
            condition = _nobody
        return cls(condition, experiment.hash_attribute, experiment.fallback_attribute)

    def unit_id(self, participant_id: str, attributes: dict[str, Any]) -> str | None:
        """The id that is hashed and stored: the hash attribute's value, else the fallback's,
        else None (the participant cannot be placed); the participant id when none is set."""
        if not self.hash_attribute:
            return participant_id
        found = hash_value(attributes.get(self.hash_attribute))
        if found is None and self.fallback_attribute:
            found = hash_value(attributes.get(self.fallback_attribute))
        return found


def _nobody(attributes: Any, groups: Any) -> bool:
    return False
