"""The experiment admin use cases: create, get, list (with opaque page tokens)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json

from assignsvc.assigner import Clock, wall_clock_ms
from assignsvc.core.model import Experiment
from assignsvc.core.validation import creation_violations, experiment_id_violations
from assignsvc.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from assignsvc.registry import ExperimentRegistry
from assignsvc.store.protocols import ExperimentStore

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def encode_page_token(after_id: str) -> str:
    """Opaque to clients (AIP-158); here simply the last id returned."""
    raw = json.dumps({"after": after_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The id to continue after; InvalidArgumentError for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError.single("page_token", "is not a token this API issued") from exc
    if not isinstance(after, str):
        raise InvalidArgumentError.single("page_token", "is not a token this API issued")
    return after


class ExperimentCatalog:
    """Creates experiments in the shared store and reads them from the registry."""

    def __init__(
        self, registry: ExperimentRegistry, store: ExperimentStore, clock: Clock = wall_clock_ms
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock

    async def create(self, experiment: Experiment) -> Experiment:
        """Validate, stamp times, store if the id is free, and publish to every replica."""
        violations = creation_violations(experiment, "experiment.")
        if violations:
            raise InvalidArgumentError(violations)
        now_ms = self._clock()
        stored = dataclasses.replace(
            experiment,
            name=experiment.name or experiment.id,
            arms=tuple(dataclasses.replace(a, name=a.name or a.id) for a in experiment.arms),
            create_time_ms=now_ms,
            update_time_ms=now_ms,
        )
        if not await self._store.create(stored):
            raise AlreadyExistsError("experiment", experiment.id)
        self._registry.put(stored)
        return stored

    def get(self, experiment_id: str) -> Experiment:
        """One experiment from memory; NotFoundError if unknown."""
        violations = experiment_id_violations(experiment_id, "experiment_id")
        if violations:
            raise InvalidArgumentError(violations)
        live = self._registry.get(experiment_id)
        if live is None:
            raise NotFoundError("experiment", experiment_id)
        return live.experiment

    def list(self, page_size: int, page_token: str) -> tuple[list[Experiment], str]:
        """A page of experiments ordered by id and the token for the next ('' at the end)."""
        if page_size < 0:
            raise InvalidArgumentError.single("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_page_token(page_token) if page_token else None
        remaining = [e for e in self._registry.all() if after is None or e.id > after]
        page = remaining[:size]
        next_token = encode_page_token(page[-1].id) if len(remaining) > size else ""
        return page, next_token
