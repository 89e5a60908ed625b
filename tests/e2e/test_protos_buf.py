"""The contract's hygiene: `buf lint` (STANDARD rules) over protos/, and `buf breaking` against
the previous commit's protos, with buf from npm (@bufbuild/buf)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def buf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The buf binary from npm's @bufbuild/buf, installed into a temporary directory."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed here (CI has it): buf comes from npm's @bufbuild/buf")
    where = tmp_path_factory.mktemp("buf")
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "@bufbuild/buf@^1.40.0"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, f"npm install failed:\n{installed.stderr[-2000:]}"
    return where / "node_modules" / ".bin" / "buf"


def test_buf_lint(buf: Path) -> None:
    ran = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_buf_breaking_against_the_previous_commit(buf: Path, tmp_path: Path) -> None:
    archived = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD~1", "protos"], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    if archived.returncode != 0:
        pytest.skip(f"no previous commit to compare with (a shallow clone?): {archived.stderr.decode()[-300:]}")
    with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    previous = tmp_path / "protos"
    if not (previous / "google").exists():  # before googleapis' imports were vendored: the same files
        shutil.copytree(ROOT / "protos" / "google", previous / "google")
    ran = subprocess.run(
        [str(buf), "breaking", "protos", "--against", str(previous)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
