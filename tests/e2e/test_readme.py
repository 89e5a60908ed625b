"""The README's quick start, run as written: each checked block's commands go through the
real `assignsvc` command in a subprocess against a real server, and print what the
README shows (times aside: they are the moment the arm was stored)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import free_port
from tests.support.processes import serve

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = "<!-- checked: tests/e2e/test_readme.py"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def checked_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Each fenced block right after a MARK line, as (command, output shown) pairs:
    `$ ` lines are commands, the lines up to the next one their output."""
    blocks: list[list[tuple[str, str]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(MARK):
            continue
        assert lines[i + 1].startswith("```"), f"README line {i + 2}: a checked block starts right after its mark"
        end = lines.index("```", i + 2)
        pairs: list[tuple[str, list[str]]] = []
        for body in lines[i + 2 : end]:
            if body.startswith("$ "):
                pairs.append((body[2:], []))
            else:
                assert pairs, f"README line {i + 3}: output before any command"
                pairs[-1][1].append(body)
        blocks.append([(command, "".join(f"{out}\n" for out in shown)) for command, shown in pairs])
    return blocks


def same_output(printed: str, shown: str) -> bool:
    """Equal once every RFC 3339 time is masked."""
    return TIME.sub("<time>", printed) == TIME.sub("<time>", shown)


def test_the_parser_reads_commands_and_their_output() -> None:
    text = f"intro\n{MARK} -->\n```console\n$ a 1\nout 1\nout 2\n$ b\n```\n```sh\n$ unchecked\n```\n"
    assert checked_blocks(text) == [[("a 1", "out 1\nout 2\n"), ("b", "")]]


def test_only_times_are_masked() -> None:
    assert same_output("u -> a (first seen 2026-12-04T00:12:47Z)\n", "u -> a (first seen 2025-01-01T00:00:00.123Z)\n")
    assert not same_output("user-42 -> treatment (index 1)\n", "user-42 -> control (index 0)\n")


def test_the_quick_start_prints_what_the_readme_shows(redis_url: str, tmp_path: Path) -> None:
    blocks = checked_blocks(README.read_text())
    assert len(blocks) >= 3 and sum(map(len, blocks)) >= 9, "the quick start's checked blocks went missing"
    with serve("--redis-url", redis_url) as server:
        env = {
            **os.environ,
            "ASSIGNSVC_TARGET": server.target,
            # `assignsvc` as `source .venv/bin/activate` provides it: this interpreter's script.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        for block in blocks:
            for command, shown in block:
                ran = subprocess.run(
                    ["bash", "-c", command],
                    check=False,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp_path,
                    timeout=60,
                )
                assert ran.returncode == 0, f"{command}\n{ran.stderr}"
                assert same_output(ran.stdout, shown), f"{command}\nprinted:\n{ran.stdout}\nREADME shows:\n{shown}"


def test_the_make_targets_the_readme_names_exist() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"(?:^|`)make ([a-z-]+)", README.read_text(), re.MULTILINE))
    assert named >= {"run", "test"}
    assert named <= targets


def http_block(text: str) -> list[str]:
    """The README's HTTP/JSON and OpenFeature curl commands, continuation lines joined."""
    section = text.split("### Over HTTP/JSON and OpenFeature", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_http_examples_answer_one_arm_three_ways(redis_url: str, tmp_path: Path) -> None:
    """The README's curl lines, as written but for the port, agree on the participant's arm."""
    commands = http_block(README.read_text())
    assert len(commands) == 3 and all(c.startswith("curl ") and "127.0.0.1:8080" in c for c in commands)
    http_port = free_port()
    with serve("--redis-url", redis_url, "--http-port", str(http_port)) as server:
        env = {**os.environ, "ASSIGNSVC_TARGET": server.target}
        create = [sys.executable, "-m", "assignsvc", "experiments", "create", "checkout-button"]
        subprocess.run([*create, "--arms", "control,treatment", "--status", "running"], check=True, env=env)
        answers = []
        for command in commands:
            ran = subprocess.run(
                ["bash", "-c", command.replace("127.0.0.1:8080", f"127.0.0.1:{http_port}") + " --fail-with-body"],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )
            assert ran.returncode == 0, f"{command}\n{ran.stdout}{ran.stderr}"
            answers.append(json.loads(ran.stdout))
    transcoded, evidential, ofrep = answers
    arm = transcoded["assignment"]["arm"]["id"]
    assert arm in {"control", "treatment"}
    assert evidential["assignment"]["arm_id"] == arm and ofrep["variant"] == arm and ofrep["value"] == arm
