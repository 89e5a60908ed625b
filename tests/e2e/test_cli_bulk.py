"""`assignsvc export` and `assignsvc preassign` in-process against a live server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from assignsvc.cli import bulk as cli_bulk
from assignsvc.cli.bulk import Progress
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Cli, Client

ODD_IDS = ["plain", "with,comma", 'with "quotes"', "line\nbreak", "ünïcødé", " spaces "]


def assigned_rows(client: Client, experiment: str) -> dict[str, tuple[str, int]]:
    """participant -> (arm id, bucket version), straight from the export RPC."""
    rows = {}
    for chunk in client.bulk.ExportAssignments(bpb.ExportAssignmentsRequest(experiment_id=experiment)):
        for row in chunk.assignments:
            rows[row.participant_id] = (row.arm_id, row.bucket_version)
    return rows


@pytest.fixture
def experiment(client: Client) -> dict[str, tuple[str, int]]:
    client.create("exp", weights=(0.5, 0.5))
    ids = ODD_IDS + [f"user-{i}" for i in range(3000)]
    for start in range(0, len(ids), 1000):
        client.assignments.BatchAssign(
            apb.BatchAssignRequest(
                requests=[apb.AssignRequest(experiment_id="exp", participant_id=p) for p in ids[start : start + 1000]]
            )
        )
    return assigned_rows(client, "exp")


class TestExport:
    def test_csv_read_back_by_the_csv_module(self, cli: Cli, experiment: dict[str, Any], tmp_path: Path) -> None:
        target = tmp_path / "out.csv"
        ran = cli("export", "exp", "--format", "csv", "--output", str(target), "--chunk-size", "100")
        assert ran.code == 0, ran.err
        with target.open(newline="", encoding="utf-8") as stream:
            records = list(csv.DictReader(stream))
        assert list(records[0]) == ["participant_id", "arm_id", "bucket_version", "first_seen"]
        assert {r["participant_id"]: (r["arm_id"], int(r["bucket_version"])) for r in records} == experiment
        assert len(records) == len(experiment)
        assert all(r["first_seen"].endswith("Z") for r in records)
        assert b"\r\n" in target.read_bytes()  # RFC 4180 line ends
        assert not Path(f"{target}.export-state").exists()

    @pytest.mark.parametrize("fmt", ["json", "jsonl"])
    def test_json_formats(self, cli: Cli, experiment: dict[str, Any], tmp_path: Path, fmt: str) -> None:
        target = tmp_path / f"out.{fmt}"
        assert cli("export", "exp", "--format", fmt, "--output", str(target)).code == 0
        text = target.read_text(encoding="utf-8")
        records = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
        assert {r["participant_id"]: (r["arm_id"], r["bucket_version"]) for r in records} == experiment
        assert len(records) == len(experiment)

    def test_stdout_and_filters(self, cli: Cli, experiment: dict[str, Any]) -> None:
        ran = cli("export", "exp", "--format", "jsonl", "--arm", "a1")
        assert ran.code == 0 and "\r" not in ran.err  # no progress bar when not on a terminal
        records = [json.loads(line) for line in ran.out.splitlines()]
        assert {r["participant_id"] for r in records} == {p for p, (arm, _) in experiment.items() if arm == "a1"}

    @pytest.mark.parametrize("fmt", ["csv", "json"])
    def test_interrupted_then_resumed_has_every_row_once(
        self, cli: Cli, experiment: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
    ) -> None:
        target = tmp_path / f"out.{fmt}"
        real_write = cli_bulk.RowWriter.write
        calls = {"n": 0}

        def crash_mid_chunk(self: cli_bulk.RowWriter, rows: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 7:  # half a chunk reaches the file, then the process "dies"
                real_write(self, rows[: len(rows) // 2])
                raise KeyboardInterrupt
            real_write(self, rows)

        monkeypatch.setattr(cli_bulk.RowWriter, "write", crash_mid_chunk)
        assert cli("export", "exp", "--format", fmt, "--output", str(target), "--chunk-size", "200").code == 130
        assert Path(f"{target}.export-state").exists()
        refused = cli("export", "exp", "--format", fmt, "--output", str(target))
        assert refused.code == 2 and "--resume" in refused.err
        other = cli("export", "exp", "--format", fmt, "--output", str(target), "--resume", "--arm", "a0")
        assert other.code == 2 and "another export" in other.err
        monkeypatch.setattr(cli_bulk.RowWriter, "write", real_write)
        resumed = cli("export", "exp", "--format", fmt, "--output", str(target), "--resume", "--chunk-size", "200")
        assert resumed.code == 0
        with target.open(newline="", encoding="utf-8") as stream:
            records = list(csv.DictReader(stream)) if fmt == "csv" else json.load(stream)
        ids = [r["participant_id"] for r in records]
        assert len(ids) == len(set(ids)) == len(experiment)
        assert set(ids) == set(experiment)

    def test_a_deleted_experiment_exports_with_strata_as_json(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        client.create("gone", weights=(0.5, 0.5), type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        client.bulk.PreassignParticipants(
            iter(
                [
                    bpb.PreassignParticipantsRequest(
                        experiment_id="gone",
                        groups=[bpb.ParticipantGroup(strata={"plan": "pro"}, participant_ids=["u1", "u2"])],
                    )
                ]
            ),
            timeout=30,
        )
        client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="gone"))
        target = tmp_path / "gone.csv"
        ran = cli("export", "gone", "--output", str(target))
        assert ran.code == 0, ran.err
        with target.open(newline="", encoding="utf-8") as stream:
            records = list(csv.DictReader(stream))
        assert sorted(r["participant_id"] for r in records) == ["u1", "u2"]
        assert {json.loads(r["strata"])["plan"] for r in records} == {"pro"}

    def test_resume_needs_a_state(self, cli: Cli, experiment: dict[str, Any], tmp_path: Path) -> None:
        assert cli("export", "exp", "--resume").code == 2
        assert cli("export", "exp", "--resume", "--output", str(tmp_path / "x.csv")).code == 2

    def test_unknown_experiment(self, cli: Cli) -> None:
        ran = cli("export", "nope")
        assert ran.code == 1 and "NOT_FOUND" in ran.err


def write_csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "participants.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


class TestPreassign:
    def test_upload_then_stats_per_stratum(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        client.create("pre", weights=(0.5, 0.5), type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        lines = ["user,country,plan"] + [
            f"u{i},{'FR' if i % 3 else 'US'},{'pro' if i % 2 else 'free'}" for i in range(999)
        ]
        path = write_csv(tmp_path, "\n".join(lines) + "\n")
        ran = cli("preassign", "pre", path, "--id-column", "user", "--strata-columns", "country,plan")
        assert ran.code == 0, ran.err
        assert "999 participants: 999 assigned now" in ran.out
        assert "country=FR, plan=pro" in ran.out
        again = cli("preassign", "pre", path, "--id-column", "user", "--strata-columns", "country,plan", "-o", "json")
        assert json.loads(again.out)["already_assigned_count"] == "999"  # int64: a JSON string
        stats = cli("experiments", "stats", "pre")
        assert stats.code == 0 and "country=US, plan=free" in stats.out
        exported = cli("export", "pre", "--format", "csv")
        header = next(csv.reader(io.StringIO(exported.out)))
        assert header[-2:] == ["strata.country", "strata.plan"]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("user,country\nu1,FR\nu2\nu3,US\n", "line 3: expected 2 fields"),
            ("user,country\nu1,FR\n,US\n", "line 3: empty 'user'"),
            ("id,country\nu1,FR\n", "no column 'user'"),
            ("user,country\n", "no participants"),
        ],
    )
    def test_a_bad_file_uploads_nothing(
        self, cli: Cli, client: Client, tmp_path: Path, text: str, message: str
    ) -> None:
        client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        ran = cli("preassign", "pre", write_csv(tmp_path, text), "--id-column", "user", "--strata-columns", "country")
        assert ran.code == 1 and message in ran.err, ran.err  # fails validation: 1, as `apply`
        assert assigned_rows(client, "pre") == {}

    def test_a_row_the_server_refuses_is_named_by_its_line(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        client.create("pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        lines = ["user,plan", "u1,free", "u2,pro", "x" * 300 + ",free", "u4,pro"]
        ran = cli(
            "preassign", "pre", write_csv(tmp_path, "\n".join(lines)), "--id-column", "user", "--strata-columns", "plan"
        )
        assert ran.code == 1
        assert "line 4.participant_id" in ran.err, ran.err
        assert assigned_rows(client, "pre") == {}

    def test_online_experiment_is_refused(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        client.create("online")
        ran = cli("preassign", "online", write_csv(tmp_path, "participant_id\nu1\n"))
        assert ran.code == 1 and "FAILED_PRECONDITION" in ran.err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    terminal, pipe = FakeTerminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress("export", 1000, stream)
        bar.advance(500)
        bar.finish()
    assert "500 rows" in terminal.getvalue() and "50% of ~1,000" in terminal.getvalue()
    assert pipe.getvalue() == ""
