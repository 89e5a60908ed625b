"""protos/ loads anywhere: Node's @grpc/proto-loader reads it alone (googleapis' imports are
vendored beside ours) and calls Assign on a live server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import Client, ServerThread

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """@grpc/proto-loader and @grpc/grpc-js installed from npm into a temporary directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed here (CI has them): the Node client check needs them")
    where = tmp_path_factory.mktemp("node")
    shutil.copy(NODE_DIR / "package.json", where / "package.json")
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, f"npm install failed:\n{installed.stderr[-2000:]}"
    return where / "node_modules"


def test_node_loads_protos_alone_and_calls_assign(node_modules: Path, server: ServerThread, client: Client) -> None:
    client.create("node-exp")
    ran = subprocess.run(
        ["node", str(NODE_DIR / "assign.js"), str(ROOT / "protos"), server.target, "node-exp", "p1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"NODE_PATH": str(node_modules), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert ran.returncode == 0, ran.stderr
    assignment = json.loads(ran.stdout)["assignment"]
    assert assignment["experiment_id"] == "node-exp" and assignment["arm"]["id"] in ("a0", "a1")
    assert assignment["arm"]["value"] == {"stringValue": assignment["arm"]["id"]}, assignment  # the default value
