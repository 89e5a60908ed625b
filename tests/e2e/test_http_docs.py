"""docs/http.md's curl examples run as written against a live server with API keys on."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import grpc

from assignsvc.config import ServerConfig
from assignsvc.v1 import access_service_pb2 as xpb
from assignsvc.v1 import access_service_pb2_grpc as xgrpc
from tests.e2e.test_auth import OPERATOR_KEY, _create_key
from tests.support import free_port, running_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def commands() -> list[str]:
    """Every command of the page's sh blocks (backslash continuations joined)."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and out:  # a quoted argument spread over lines
            out[-1] += "\n" + line
        elif line.strip():
            out.append(line)
    return out


def test_the_curl_examples_work_as_written(server_config: ServerConfig) -> None:
    assert shutil.which("curl"), "curl is needed to run the documented examples"
    config = dataclasses.replace(server_config, http_port=free_port(), auth=True, operator_key=OPERATOR_KEY)
    with running_server(config) as server:
        channel = grpc.insecure_channel(server.target)
        xgrpc.DatasourceServiceStub(channel).CreateDatasource(
            xpb.CreateDatasourceRequest(datasource=xpb.Datasource(id="docs")),
            metadata=[("x-api-key", OPERATOR_KEY)],
            timeout=10,
        )
        key = _create_key(channel, "docs", [xpb.API_KEY_SCOPE_ADMIN], OPERATOR_KEY).secret
        channel.close()
        assert server.running is not None and server.running.http is not None
        env = {
            "BASE": f"http://127.0.0.1:{server.running.http.port}",
            "KEY": key,
            "DS": "docs",
            "PATH": "/usr/bin:/bin",
        }
        outputs = []
        found = commands()
        assert len(found) >= 5 and all(c.startswith("curl ") for c in found)
        for command in found:
            ran = subprocess.run(
                ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30, check=False
            )
            assert ran.returncode == 0, f"{command}\n{ran.stdout}\n{ran.stderr}"
            outputs.append(ran.stdout)
    assert json.loads(outputs[1])["assignment"]["arm"]["value"] in ("#888", "#0a0")
    assert outputs[4].startswith("participant_id,arm_id,arm_name,created_at\n")
    assert json.loads(outputs[5])["value"] in ("#888", "#0a0")
