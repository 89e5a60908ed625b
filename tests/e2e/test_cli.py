"""The `assignsvc` client commands, driven in-process through a live server, and the experiment file reader."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.field_mask_pb2 import FieldMask
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook
from hypothesis import given, settings
from hypothesis import strategies as st

from assignsvc.core.model import ExperimentStatus, HashAlgorithm, Namespace
from assignsvc.documents.experiment_file import dump_experiment, dump_experiments, read_experiments
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Cli, Client, ServerThread
from tests.support.hashing import hashed_to


def violations(text: str | bytes) -> dict[str, str]:
    """field -> description of every problem read_experiments finds in text."""
    with pytest.raises(InvalidArgumentError) as err:
        read_experiments(text)
    return {v.field: v.description for v in err.value.violations}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


TWO_ARMS = "arms: [{id: control, weight: 0.5}, {id: treatment, weight: 0.5}]"


class TestExperimentFile:
    """The file reader names every problem by its path and line, and never raises anything else."""

    def test_every_problem_at_once_with_paths_and_lines(self) -> None:
        found = violations(
            "experiments:\n"
            "  - id: ok\n"
            f"    {TWO_ARMS}\n"
            "  - id: bad\n"
            "    arms:\n"
            "      - {id: control, weight: abc}\n"
            "      - {id: treatment, weight: 0.5, colour: red}\n"
            "    namespace: {id: ns, range: [0.6, 0.2]}\n"
            "    coverge: 0.5\n"
            "    status: runing\n"
            "    end_time: 2025-01-01\n"
            "    forced_arms: {bob: nope}\n"
        )
        assert found == {
            "experiments[1].arms[0].weight": "must be a number, got 'abc' (line 6)",
            "experiments[1].arms[1].colour": "unknown field (known: id, name, weight, value) (line 7)",
            "experiments[1].namespace.range[1]": "must be greater than range_start (line 8)",
            "experiments[1].coverge": "unknown field (did you mean 'coverage'?) (line 9)",
            "experiments[1].status": "must be one of draft, running, paused, stopped, got 'runing'"
            " (did you mean 'running'?) (line 10)",
            "experiments[1].end_time": "needs a time and a UTC offset, e.g. 2025-01-01T00:00:00Z (line 11)",
            "experiments[1].forced_arms['bob']": "'nope' is not an arm of this experiment (line 12)",
        }

    def test_core_rules_and_duplicate_ids(self) -> None:
        found = violations(
            f"- id: a\n  {TWO_ARMS}\n"
            "- id: a\n  arms: [{id: x, weight: 0.5}, {id: x, weight: 0.6}]\n  min_bucket_version: 1\n"
        )
        assert set(found) == {"[1].id", "[1].arms", "[1].arms[1].id", "[1].min_bucket_version"}
        assert found["[1].id"].startswith("duplicates the id of [0]")

    def test_required_fields_are_reported_once(self) -> None:
        assert violations("name: no id\n") == {"id": "is required", "arms": "is required"}

    def test_yaml_syntax_error_is_one_violation_with_line_and_column(self) -> None:
        found = violations(f"id: x\n{TWO_ARMS}\ncoverage: [0.5\n")
        assert list(found) == ["document"]
        assert re.match(r"is not valid YAML at line 4, column 1: expected ',' or ']'", found["document"])

    def test_duplicate_keys_are_refused(self) -> None:
        found = violations(f"id: x\n{TWO_ARMS}\ncoverage: 0.5\ncoverage: 0.7\n")
        assert found == {
            "document": "is not valid YAML at line 4, column 1: duplicate key 'coverage' (first on line 3)"
        }

    @pytest.mark.parametrize(
        ("text", "field"),
        [
            ("5", "document"),
            ("- 5", "[0]"),
            ("experiments: 3", "experiments"),
            ("", "document"),
            ("id: x\narms: {a: 1}", "arms"),
            ("---\n- 1\n---\n- 2", "documents[0][0]"),
            ("id: x\nstart_time: 2025-13-01T00:00:00Z", "document"),
            (b"\xff", "document"),
            ("[" * 5000, "document"),
            ('id: x\nname: "\\ud800"', "name"),
        ],
    )
    def test_wrong_shapes(self, text: str | bytes, field: str) -> None:
        assert field in violations(text)

    def test_yaml_1_2_scalars(self) -> None:
        [entry] = read_experiments(
            "id: '2024'\narms: [{id: 'on', weight: 5e-1}, {id: 'off', weight: .5}]\n"
            "forced_arms: {'0123': 'on', '12:30': 'off'}\n"
        )
        assert [a.id for a in entry.experiment.arms] == ["on", "off"]
        assert entry.experiment.forced_arms == {"0123": "on", "12:30": "off"}
        found = violations("id: 2024\narms: [{id: yes, weight: 0.5}, {id: on, weight: 0.5}]\nforced_arms: {12: x}\n")
        assert found["id"] == "must be a string, got 2024 (put it in quotes) (line 1)"
        assert found["forced_arms['12']"].startswith("participant ids must be strings")
        assert "arms[0].id" not in found  # `yes` and `on` are strings in YAML 1.2

    def test_times(self) -> None:
        [entry] = read_experiments(
            f"id: x\n{TWO_ARMS}\nstart_time: 2025-01-01T02:00:00+02:00\nend_time: '2025-01-02T00:00:00.250Z'\n"
        )
        assert (entry.experiment.start_time_ms, entry.experiment.end_time_ms) == (1735689600000, 1735776000250)
        found = violations(
            f"id: x\n{TWO_ARMS}\nstart_time: 2025-01-01 00:00:00\nend_time: '2025-01-01T00:00:00.0001Z'\n"
        )
        assert found["start_time"].startswith("needs a UTC offset")
        assert found["end_time"].startswith("must be a whole number of milliseconds")

    def test_json_is_accepted_even_with_tabs(self) -> None:
        text = '{\n\t"experiments": [{"id": "j", "arms": [{"id": "a", "weight": 1e-1}, {"id": "b", "weight": 0.9}]}]\n}'
        [entry] = read_experiments(text)
        assert [a.weight for a in entry.experiment.arms] == [0.1, 0.9]
        assert entry.status is None
        assert violations('{\n\t"id": "j", "id": "k"}') == {"document": "is not valid JSON: duplicate key 'id'"}

    def test_status_absent_means_keep(self) -> None:
        draft, running = read_experiments(f"- id: a\n  {TWO_ARMS}\n- id: b\n  {TWO_ARMS}\n  status: RUNNING\n")
        assert (draft.status, running.status) == (None, ExperimentStatus.RUNNING)

    def test_dump_then_read_is_the_identity(self) -> None:
        [entry] = read_experiments(
            "id: full\nname: Full\n"
            "arms: [{id: 'on', name: Yes, weight: 0.3333333333333333}, {id: '1e5', weight: 0.6666666666666667}]\n"
            "coverage: 0.8\nnamespace: {id: ns, range: [0, 0.5]}\nseed: '0123'\nhash_algorithm: growthbook_v2\n"
            "bucket_version: 3\nmin_bucket_version: 1\nstatus: paused\ntype: preassigned\n"
            "start_time: 2025-01-01T00:00:00.123Z\nend_time: 2026-01-01T00:00:00Z\n"
            "forced_arms: {'12:30': 'on', 'yes': '1e5'}\n"
        )
        e = entry.experiment
        assert e.namespace == Namespace("ns", 0.0, 0.5) and e.hash_algorithm is HashAlgorithm.GROWTHBOOK_V2
        assert [x.experiment for x in read_experiments(dump_experiment(e))] == [e]
        other = dataclasses.replace(e, id="other", seed="", forced_arms={})
        assert [x.experiment for x in read_experiments(dump_experiments([e, other]))] == [e, other]

    json_values = st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "id",
                        "arms",
                        "weight",
                        "experiments",
                        "namespace",
                        "range",
                        "forced_arms",
                        "start_time",
                        "status",
                        "coverage",
                        "name",
                        "x",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )

    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def test_any_data_is_read_or_refused_cleanly(self, value: Any) -> None:
        for text in (json.dumps(value), yaml.safe_dump(value)):
            try:
                read_experiments(text)
            except InvalidArgumentError as exc:
                assert exc.violations

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=60))
    def test_any_text_is_read_or_refused_cleanly(self, text: str) -> None:
        try:
            read_experiments(text)
        except InvalidArgumentError as exc:
            assert exc.violations


def create(cli: Cli, experiment_id: str, *flags: str) -> None:
    ran = cli("experiments", "create", experiment_id, "--arms", "control:0.5,treatment:0.5", *flags)
    assert ran.code == 0, ran.err


def get(client: Client, experiment_id: str) -> Any:
    return client.experiments.GetExperiment(espb.GetExperimentRequest(experiment_id=experiment_id)).experiment


class TestLifecycleCommands:
    """update, delete, start/pause/resume/stop and rerandomize: each works, and each refusal exits 1 saying why."""

    def test_update_changes_exactly_the_flags_given(self, cli: Cli, client: Client) -> None:
        create(cli, "upd", "--name", "Before", "--coverage", "0.5")
        named = [epb.Arm(id="control", name="Control", weight=0.5), epb.Arm(id="treatment", weight=0.5)]
        client.experiments.UpdateExperiment(
            espb.UpdateExperimentRequest(
                experiment=epb.Experiment(id="upd", arms=named), update_mask=FieldMask(paths=["arms"])
            )
        )
        ran = cli(
            "experiments",
            "update",
            "upd",
            "--arms",
            "control:0.3,treatment:0.7",
            "--force",
            "qa-1=treatment",
            "--start-time",
            "2030-01-01T00:00:00Z",
        )
        assert ran.code == 0, ran.err
        e = get(client, "upd")
        assert (e.name, e.coverage) == ("Before", 0.5)  # not in the mask
        assert [(a.id, a.name, a.weight) for a in e.arms] == [
            ("control", "Control", 0.3),
            ("treatment", "treatment", 0.7),
        ]
        assert dict(e.forced_arms) == {"qa-1": "treatment"} and e.start_time.seconds == 1893456000
        assert cli("experiments", "update", "upd", "--force", "qa-2=control", "--start-time", "none").code == 0
        e = get(client, "upd")
        assert dict(e.forced_arms) == {"qa-1": "treatment", "qa-2": "control"} and not e.HasField("start_time")
        ran = cli("experiments", "update", "upd", "--clear-forced", "--name", "After", "--namespace", "ns:0:0.5")
        assert ran.code == 0, ran.err
        e = get(client, "upd")
        assert (dict(e.forced_arms), e.name, e.namespace.range_end) == ({}, "After", 0.5)
        assert cli("experiments", "update", "upd", "--namespace", "none").code == 0
        assert not get(client, "upd").HasField("namespace")

    def test_update_refusals(self, cli: Cli, client: Client) -> None:
        create(cli, "upd")
        stale = cli("experiments", "update", "upd", "--coverage", "0.9", "--etag", "999")
        assert stale.code == 1 and stale.err.startswith("error: ABORTED")
        bad = cli("experiments", "update", "upd", "--coverage", "1.5")
        assert bad.code == 1 and "INVALID_ARGUMENT" in bad.err and "experiment.coverage" in bad.err
        assert cli("experiments", "update", "upd").code == 2
        assert get(client, "upd").coverage == 1.0

    def test_status_changes(self, cli: Cli, client: Client) -> None:
        create(cli, "life")
        for action, status in [("start", "running"), ("pause", "paused"), ("resume", "running"), ("stop", "stopped")]:
            ran = cli("experiments", action, "life")
            assert ran.code == 0, ran.err
            assert re.search(rf"^life\s+{status}\s", ran.out, re.MULTILINE), ran.out
        again = cli("experiments", "start", "life")
        assert again.code == 1
        assert again.err.startswith("error: FAILED_PRECONDITION: cannot start experiment 'life': it is STOPPED")

    def test_stop_with_release_ships_an_arm_to_everyone(self, cli: Cli, client: Client) -> None:
        create(cli, "ship", "--status", "running")
        assert cli("assign", "ship", "holder").code == 0
        bad = cli("experiments", "stop", "ship", "--release", "nope")
        assert bad.code == 1 and "INVALID_ARGUMENT" in bad.err and "released_arm_id" in bad.err
        ran = cli("experiments", "stop", "ship", "--release", "treatment")
        assert ran.code == 0, ran.err
        assert re.search(r"^ship\s+stopped\s", ran.out, re.MULTILINE)
        shown = cli("experiments", "get", "ship").out
        assert re.search(r"^released_arm\s+treatment$", shown, re.MULTILINE)
        assert re.search(r"^phase\s+0$", shown, re.MULTILINE)
        for participant in ("holder", "newcomer"):
            answer = cli("assign", "ship", participant)
            assert answer.out == f"{participant} -> treatment (released to everyone; not in the experiment)\n"
        assert cli("experiments", "stop", "ship", "--release", "control").code == 0  # changed while stopped
        assert get(client, "ship").released_arm_id == "control"
        again = cli("experiments", "stop", "ship")
        assert again.code == 1 and "FAILED_PRECONDITION" in again.err

    def test_start_twice_and_stale_etag(self, cli: Cli, client: Client) -> None:
        create(cli, "twice")
        etag = get(client, "twice").etag
        assert cli("experiments", "start", "twice", "--etag", etag).code == 0
        twice = cli("experiments", "start", "twice")
        assert twice.code == 1 and "FAILED_PRECONDITION" in twice.err and "RUNNING" in twice.err
        stale = cli("experiments", "pause", "twice", "--etag", etag)
        assert stale.code == 1 and stale.err.startswith("error: ABORTED")

    def test_delete(self, cli: Cli, client: Client) -> None:
        create(cli, "gone")
        stale = cli("experiments", "delete", "gone", "--etag", "999")
        assert stale.code == 1 and "ABORTED" in stale.err
        ran = cli("experiments", "delete", "gone", "--etag", get(client, "gone").etag)
        assert (ran.code, ran.out) == (0, "deleted gone\n")
        missing = cli("experiments", "get", "gone")
        assert missing.code == 1 and missing.err.startswith("error: NOT_FOUND")
        assert cli("experiments", "delete", "gone").code == 1

    def test_rerandomize(self, cli: Cli, client: Client) -> None:
        create(cli, "rr")
        ran = cli("experiments", "rerandomize", "rr", "--seed", "fresh", "--block-previous", "-o", "json")
        assert ran.code == 0, ran.err
        shown = json.loads(ran.out)
        assert (shown["seed"], shown["bucket_version"], shown["min_bucket_version"]) == ("fresh", 1, 1)
        same = cli("experiments", "rerandomize", "rr", "--seed", "fresh")
        assert same.code == 1 and "seed: must differ from the current seed" in same.err
        assert cli("experiments", "rerandomize", "rr").code == 0
        assert get(client, "rr").bucket_version == 2


def assign(client: Client, experiment_id: str, participant: str) -> Any:
    return client.assignments.Assign(apb.AssignRequest(experiment_id=experiment_id, participant_id=participant))


class TestStatsAndOutput:
    """stats prints counts, shares and the SRM verdict; every command speaks table, JSON and YAML."""

    def test_stats_table_after_assigns(self, cli: Cli, client: Client) -> None:
        create(cli, "st", "--status", "running")
        for i in range(200):
            assign(client, "st", f"user-{i}")
        ran = cli("experiments", "stats", "st")
        assert ran.code == 0, ran.err
        lines = ran.out.splitlines()
        assert lines[0].split() == ["ARM", "ASSIGNMENTS", "OBSERVED", "WEIGHT"]
        counts = {line.split()[0]: int(line.split()[1]) for line in lines[1:4]}
        assert counts["control"] + counts["treatment"] == counts["total"] == 200
        assert lines[1].split()[3] == "50.00%" and lines[1].index("50.00%") == lines[2].index("50.00%")
        assert lines[4].startswith("SRM p-value: ") and "WARNING" not in ran.out
        # A weight change under stored rows starts phase 1: each phase is tested against its own weights.
        assert cli("experiments", "update", "st", "--arms", "control:0.99,treatment:0.01").code == 0
        phased = cli("experiments", "stats", "st")
        assert "WARNING" not in phased.out
        assert re.search(r"^phase 0 \(since .*\):$", phased.out, re.MULTILINE)
        assert re.search(r"^phase 1 \(since .*, current\):$", phased.out, re.MULTILINE)
        assert "SRM p-value: n/a (bucket version 0, phase 1: no assignments" in phased.out
        assert phased.out.rstrip().endswith("total, every phase: 200")
        # Only treatment's participants arrive in phase 1: a real mismatch, warned about.
        for participant in hashed_to("st", (0.99, 0.01), 1, 30, "late"):
            assign(client, "st", participant)
        warned = cli("experiments", "stats", "st")
        assert "WARNING: sample ratio mismatch" in warned.out
        as_json = json.loads(cli("experiments", "stats", "st", "-o", "json").out)
        assert as_json["srm_warning"] is True and int(as_json["total_assignments"]) == 230
        assert [int(p["total_assignments"]) for p in as_json["phases"]] == [200, 30]
        missing = cli("experiments", "stats", "nope")
        assert missing.code == 1 and "NOT_FOUND" in missing.err

    def test_stats_of_an_older_bucket_version(self, cli: Cli, client: Client) -> None:
        create(cli, "old", "--status", "running")
        for i in range(10):
            assign(client, "old", f"u{i}")
        assert cli("experiments", "rerandomize", "old").code == 0
        assert re.search(r"^total +0$", cli("experiments", "stats", "old").out, re.MULTILINE)
        older = cli("experiments", "stats", "old", "--bucket-version", "0").out
        assert re.search(r"^total +10$", older, re.MULTILINE) and "(bucket version 0)" in older

    def test_outputs(self, cli: Cli, client: Client) -> None:
        create(cli, "out-a", "--status", "running")
        create(cli, "out-b", "--namespace", "ns:0:0.5")
        listed = cli("experiments", "list").out.splitlines()
        assert [line.split()[0] for line in listed] == ["ID", "out-a", "out-b"]
        assert len({line.index("ARMS") if i == 0 else line.index("control") for i, line in enumerate(listed)}) == 1
        details = cli("experiments", "get", "out-b").out
        assert re.search(r"^namespace\s+ns \[0\.0, 0\.5\)$", details, re.MULTILINE)
        assert re.search(r"^etag\s+1$", details, re.MULTILINE)
        assert [e["id"] for e in json.loads(cli("experiments", "list", "-o", "json").out)] == ["out-a", "out-b"]
        assert yaml.safe_load(cli("experiments", "get", "out-a", "-o", "yaml").out)["status"] == "running"
        assert [e["id"] for e in yaml.safe_load(cli("experiments", "list", "-o", "yaml").out)["experiments"]] == [
            "out-a",
            "out-b",
        ]
        assert re.fullmatch(
            r"p1 -> (control|treatment) \(index [01], new_assignment, first seen \S+Z, "
            r"bucket version 0\)\n",
            cli("assign", "out-a", "p1").out,
        )
        shown = yaml.safe_load(cli("get-assignment", "out-a", "p1", "-o", "yaml").out)
        assert shown["reason"] == "ASSIGNMENT_REASON_STICKY"
        assert json.loads(cli("assign", "out-b", "p1", "-o", "json").out)["in_experiment"] is False


FULL = """\
experiments:
  - id: checkout
    name: Checkout button
    arms:
      - {id: control, name: Control, weight: 0.5}
      - {id: green, weight: 0.5}
    coverage: 0.8
    namespace: {id: checkout, range: [0.0, 0.5]}
    status: running
    start_time: 2025-01-01T00:00:00Z
    forced_arms: {qa-alice: green}
  - id: pricing
    arms: [{id: a, weight: 0.25}, {id: b, weight: 0.75}]
    hash_algorithm: growthbook_v2
"""


class TestApply:
    """apply: created / updated / unchanged, dry runs, all-or-nothing, refused files, round trips."""

    def test_create_then_unchanged_then_update(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        path = write(tmp_path, "exp.yaml", FULL)
        first = cli("apply", path)
        assert first.code == 0, first.err
        assert first.out == "created checkout\ncreated pricing\n"
        assert get(client, "checkout").status == 2 and get(client, "pricing").status == 1  # running, draft
        assert cli("apply", path).out == "unchanged checkout\nunchanged pricing\n"
        changed = cli("apply", write(tmp_path, "v2.yaml", FULL.replace("coverage: 0.8", "coverage: 0.9")))
        assert changed.out == "updated checkout\n  coverage: 0.8 -> 0.9\nunchanged pricing\n"

    def test_dry_run_writes_nothing(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        path = write(tmp_path, "exp.yaml", FULL)
        dry = cli("apply", path, "--dry-run")
        assert dry.code == 0, dry.err
        assert dry.out.startswith("created checkout\n  name: Checkout button\n")
        assert dry.out.endswith("dry run: nothing was written\n")
        assert cli("experiments", "get", "checkout").code == 1
        assert cli("apply", path).code == 0
        edited = FULL.replace("coverage: 0.8", "coverage: 0.6").replace("status: running", "status: paused")
        dry = cli("apply", write(tmp_path, "v2.yaml", edited), "--dry-run")
        assert "updated checkout\n  coverage: 0.8 -> 0.6\n  status: RUNNING -> PAUSED\n" in dry.out
        e = get(client, "checkout")
        assert (e.coverage, e.status) == (0.8, 2)

    def test_one_invalid_experiment_changes_nothing(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        text = FULL.replace("{id: b, weight: 0.75}", "{id: b, weight: 0.7}")
        ran = cli("apply", write(tmp_path, "bad.yaml", text))
        assert ran.code == 1 and ran.out == ""
        assert "nothing was sent" in ran.err
        assert "  experiments[1].arms: weights must sum to 1 (within 1e-6), got 0.95 (line 13)" in ran.err
        assert cli("experiments", "get", "checkout").code == 1
        assert client.experiments.ListExperiments(espb.ListExperimentsRequest()).experiments == []

    def test_refused_by_the_server_changes_nothing(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        assert cli("apply", write(tmp_path, "exp.yaml", FULL)).code == 0
        assert cli("experiments", "stop", "checkout").code == 0
        # pricing would change, checkout cannot go back to running: neither changes.
        ran = cli("apply", write(tmp_path, "v2.yaml", FULL.replace("0.25}", "0.5}").replace("0.75}", "0.5}")))
        assert ran.code == 1 and "FAILED_PRECONDITION" in ran.err and "STOPPED" in ran.err
        assert [a.weight for a in get(client, "pricing").arms] == [0.25, 0.75]
        text = "id: pricing\narms: [{id: a, weight: 0.25}, {id: b, weight: 0.75}]\nhash_algorithm: murmur3\n"
        back = cli("apply", write(tmp_path, "v3.yaml", text))
        assert back.code == 1 and "INVALID_ARGUMENT" in back.err
        assert "  hash_algorithm: cannot change" in back.err  # the server's field, as a path in the file

    def test_unknown_key_and_syntax_error_send_nothing(self, cli: Cli, tmp_path: Path) -> None:
        typo = cli("apply", write(tmp_path, "typo.yaml", FULL.replace("coverage:", "coverge:")))
        assert typo.code == 1
        assert "  experiments[0].coverge: unknown field (did you mean 'coverage'?) (line 7)" in typo.err
        broken = cli("apply", write(tmp_path, "broken.yaml", FULL.replace("[0.0, 0.5]", "[0.0, 0.5")))
        assert broken.code == 1 and "document: is not valid YAML at line" in broken.err
        assert cli("experiments", "get", "checkout").code == 1
        missing = cli("apply", str(tmp_path / "missing.yaml"))
        assert missing.code == 2 and "cannot read" in missing.err

    def test_get_yaml_then_apply_is_unchanged(self, cli: Cli, client: Client, tmp_path: Path) -> None:
        assert cli("apply", write(tmp_path, "exp.yaml", FULL)).code == 0
        assert cli("experiments", "rerandomize", "pricing").code == 0  # a random seed, bucket version 1
        assert cli("experiments", "update", "checkout", "--end-time", "2031-01-01T00:00:00.5Z").code == 0
        one = cli("experiments", "get", "checkout", "-o", "yaml").out
        assert one.startswith("id: checkout\nname: Checkout button\narms:\n  - {id: control, name: Control, weight:")
        assert cli("apply", write(tmp_path, "one.yaml", one)).out == "unchanged checkout\n"
        everything = cli("experiments", "list", "-o", "yaml").out
        assert "bucket_version: 1" in everything and "seed: " in everything
        assert cli("apply", write(tmp_path, "all.yaml", everything)).out == "unchanged checkout\nunchanged pricing\n"

    def test_json_file_and_stdin(
        self, cli: Cli, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        doc = {"id": "from-json", "arms": [{"id": "a", "weight": 0.5}, {"id": "b", "weight": 0.5}], "status": "running"}
        assert cli("apply", write(tmp_path, "exp.json", json.dumps(doc, indent="\t"))).out == "created from-json\n"
        monkeypatch.setattr(
            "sys.stdin", io.TextIOWrapper(io.BytesIO(yaml.safe_dump({**doc, "coverage": 0.5}).encode()))
        )
        ran = cli("apply", "-")
        assert ran.out == "updated from-json\n  coverage: 1.0 -> 0.5\n", ran.err
        assert get(client, "from-json").coverage == 0.5


def growthbook_webhook(tracking_key: str, *, hash_version: int, status: str) -> dict[str, Any]:
    """An experiment.updated webhook body as GrowthBook sends it: 3 variations, uneven split, coverage 0.8,
    a namespace."""
    variations = [
        {"variationId": f"var_{i}", "key": str(i), "name": name, "description": "", "screenshots": []}
        for i, name in enumerate(["Control", "Green", "Blue"])
    ]
    phase = {
        "name": "Main",
        "dateStarted": "2025-03-01T00:00:00.000Z",
        "dateEnded": "",
        "reasonForStopping": "",
        "seed": f"{tracking_key}-seed",
        "coverage": 0.8,
        "trafficSplit": [{"variationId": f"var_{i}", "weight": w} for i, w in enumerate([0.2, 0.3, 0.5])],
        "namespace": {"namespaceId": "pricing", "range": [0.1, 0.9]},
        "targetingCondition": "",
        "savedGroupTargeting": [],
        "prerequisites": [],
    }
    experiment = {
        "id": f"exp_{tracking_key}",
        "trackingKey": tracking_key,
        "name": "Checkout CTA",
        "type": "standard",
        "project": "",
        "hypothesis": "",
        "description": "",
        "tags": [],
        "owner": "",
        "archived": False,
        "status": status,
        "autoRefresh": True,
        "hashAttribute": "id",
        "hashVersion": hash_version,
        "bucketVersion": 0,
        "minBucketVersion": 0,
        "variations": variations,
        "phases": [phase],
        "settings": {},
    }
    return {
        "event": "experiment.updated",
        "object": "experiment",
        "api_version": "2024-07-31",
        "created": 1740787200000,
        "data": {"object": experiment, "previous_attributes": {"status": "draft"}},
    }


def participant_ids(count: int) -> list[str]:
    """ASCII, hex, BMP and astral-plane ids (GrowthBook hashes UTF-16 code units)."""
    rng = random.Random(count)
    ids = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            ids.append(f"user-{rng.randrange(10**9)}")
        elif kind == 1:
            ids.append(f"{rng.getrandbits(128):032x}")
        elif kind == 2:
            ids.append("".join(chr(rng.randint(0x80, 0xD7FF)) for _ in range(rng.randint(1, 12))))
        else:
            ids.append("u" + "".join(chr(rng.randint(0x1F300, 0x1FAFF)) for _ in range(rng.randint(1, 6))))
    return ids


async def assign_all(target: str, experiment_id: str, ids: list[str]) -> list[tuple[bool, int]]:
    """(in_experiment, arm index or -1) per id, from Assign over the wire, 64 calls in flight."""
    limit = asyncio.Semaphore(64)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agrpc.AssignmentServiceStub(channel)

        async def one(pid: str) -> tuple[bool, int]:
            async with limit:
                request = apb.AssignRequest(experiment_id=experiment_id, participant_id=pid)
                reply = await stub.Assign(request, timeout=30)
            a = reply.assignment
            return a.in_experiment, a.arm.index if a.in_experiment else -1

        return list(await asyncio.gather(*(one(pid) for pid in ids)))


class TestGrowthBookApply:
    """A GrowthBook experiment applied as its webhook JSON assigns, through the live server, exactly as GrowthBook."""

    def test_growthbook_document_in_a_file(self) -> None:
        body = growthbook_webhook("cta", hash_version=2, status="running")
        del body["data"]["object"]["status"]
        [entry] = read_experiments(json.dumps({"experiments": [body]}))
        assert entry.status is None and entry.path == "experiments[0]"
        assert entry.experiment.hash_algorithm is HashAlgorithm.GROWTHBOOK_V2
        body["data"]["object"]["hashVersion"] = 3
        text = yaml.safe_dump({"experiments": [body]}, sort_keys=False)
        found = violations(text)
        assert list(found) == ["experiments[0].data.object.hashVersion"]
        line = next(n for n, content in enumerate(text.splitlines(), 1) if "hashVersion" in content)
        assert found["experiments[0].data.object.hashVersion"] == f"must be 1 or 2, got 3 (line {line})"

    @pytest.mark.parametrize(("hash_version", "status"), [(2, "running"), (1, "draft")])
    def test_10k_assigns_match_the_growthbook_sdk(
        self, cli: Cli, server: ServerThread, tmp_path: Path, hash_version: int, status: str
    ) -> None:
        key = f"checkout-cta-v{hash_version}"
        body = growthbook_webhook(key, hash_version=hash_version, status=status)
        applied = cli("apply", write(tmp_path, "growthbook.json", json.dumps(body, indent=2)))
        assert (applied.code, applied.out) == (0, f"created {key}\n"), applied.err
        if status != "running":
            assert cli("experiments", "start", key).code == 0
        else:  # the same webhook again changes nothing
            assert cli("apply", write(tmp_path, "again.json", json.dumps(body))).out == f"unchanged {key}\n"
        ids = participant_ids(10_000)
        ours = asyncio.run(assign_all(server.target, key, ids))
        phase = body["data"]["object"]["phases"][0]
        theirs_experiment = GBExperiment(
            key=key,
            variations=[0, 1, 2],
            weights=[s["weight"] for s in phase["trafficSplit"]],
            coverage=phase["coverage"],
            namespace=("pricing", 0.1, 0.9),
            hashVersion=hash_version,
            seed=phase["seed"],
        )
        theirs = []
        for pid in ids:
            gb = GrowthBook(attributes={"id": pid})
            result = gb.run(theirs_experiment)
            theirs.append((result.inExperiment, result.variationId if result.inExperiment else -1))
            gb.destroy()
        mismatches = [(pid, o, t) for pid, o, t in zip(ids, ours, theirs, strict=True) if o != t]
        assert mismatches == []
        assert {arm for _, arm in ours} == {-1, 0, 1, 2}
