"""What a new user hits first, through the real `assignsvc` command in a subprocess: the
exit status, what it prints, and where (each found once by trying the README by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assignsvc.v1 import experiment_pb2 as epb
from tests.support import Client, ServerThread, assign_all


def run(server: ServerThread, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m assignsvc ARGV --target <server>`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "assignsvc", *argv, "--target", server.target],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def assigned(client: Client) -> int:
    """An experiment `exp` with 300 stored rows; their number."""
    client.create("exp")
    return len(assign_all(client, "exp", [f"user-{i}" for i in range(300)]))


class TestExport:
    def test_csv_counts_the_rows_it_wrote(self, server: ServerThread, assigned: int, tmp_path: Path) -> None:
        target = tmp_path / "out.csv"
        ran = run(server, "export", "exp", "--format", "csv", "--output", str(target))
        assert ran.returncode == 0, ran.stderr
        assert len(target.read_text().splitlines()) == 1 + assigned
        assert f"exported {assigned} rows to {target}" in ran.stderr

    def test_a_reader_that_leaves_early_is_no_traceback(self, server: ServerThread, client: Client) -> None:
        client.create("big")  # more rows than a pipe's buffer holds, so the writer meets the closed pipe
        assign_all(client, "big", [f"user-{i}" for i in range(5000)])
        command = f"{sys.executable} -m assignsvc export big --target {server.target} | head -3"
        ran = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60, check=False
        )
        assert len(ran.stdout.splitlines()) == 3
        assert "Traceback" not in ran.stderr and "BrokenPipeError" not in ran.stderr, ran.stderr
        assert ran.returncode == 141  # as a command killed by SIGPIPE, which a shell reports so


class TestMessages:
    def test_get_assignment_without_the_hash_attribute(self, server: ServerThread, client: Client) -> None:
        client.create("dev", hash_attribute="deviceId")
        for command in ("assign", "get-assignment"):
            ran = run(server, command, "dev", "bob")
            assert ran.returncode == 0, ran.stderr
            assert "bob -> not in experiment (missing_hash_attribute)" in ran.stdout

    def test_a_bad_preassign_file_exits_1_as_a_bad_apply_file(
        self, server: ServerThread, client: Client, tmp_path: Path
    ) -> None:
        client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        bad_csv = tmp_path / "bad.csv"
        bad_csv.write_text("user,country\nu1\n")
        ran = run(server, "preassign", "pre", str(bad_csv), "--id-column", "user", "--strata-columns", "country")
        assert (ran.returncode, "line 2: expected 2 fields" in ran.stderr) == (1, True), ran.stderr
        bad_yaml = tmp_path / "bad.yaml"
        bad_yaml.write_text("experiments:\n  - id: x\n    arms: []\n")
        assert run(server, "apply", str(bad_yaml)).returncode == 1

    def test_a_loopback_webhook_names_the_setting_that_allows_it(self, server: ServerThread) -> None:
        ran = run(server, "webhooks", "add", "http://127.0.0.1:9/hook")
        assert ran.returncode == 1
        assert "loopback" in ran.stderr
        assert "--webhook-allow-networks 127.0.0.1/32" in ran.stderr
        assert "ASSIGNSVC_WEBHOOK_ALLOW_NETWORKS=127.0.0.1/32 make run" in ran.stderr

    def test_an_unknown_flag_shows_the_commands_usage(self, server: ServerThread) -> None:
        ran = run(server, "assign", "x", "u1", "--bogus")
        assert ran.returncode == 2
        assert ran.stderr.startswith("usage: assignsvc assign "), ran.stderr
        assert "unrecognized arguments: --bogus" in ran.stderr
        nested = run(server, "experiments", "list", "--bogus")
        assert nested.stderr.startswith("usage: assignsvc experiments list "), nested.stderr

    def test_recreating_a_deleted_id_puts_the_note_outside_the_quotes(
        self, server: ServerThread, client: Client
    ) -> None:
        client.create("hooked")
        assert run(server, "experiments", "delete", "hooked").returncode == 0
        ran = run(server, "experiments", "create", "hooked", "--arms", "a,b")
        assert ran.returncode == 1
        assert "experiment 'hooked' already exists (deleted; ids are never reused)" in ran.stderr, ran.stderr
