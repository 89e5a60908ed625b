"""The `deployment` fixture: each contract test runs once per implementation its module's
KINDS names (see harness)."""

from __future__ import annotations

import pytest

from tests.store.contracts.harness import ALL_KINDS, Deployment


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `deployment` over the test module's KINDS."""
    if "deployment" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "KINDS", ALL_KINDS)
        metafunc.parametrize("deployment", kinds, indirect=True)


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """The kind under test and its emptied server (the session's Redis or cluster)."""
    kind = str(request.param)
    if kind == "memory":
        return Deployment(kind, "")
    fixture = "cluster_url" if kind.endswith("cluster") else "redis_url"
    return Deployment(kind, str(request.getfixturevalue(fixture)))
