"""The CLI's targeting surface against a live server: conditions, attributes, saved groups, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assignsvc.cli.experiments import parse_attributes
from assignsvc.config import ConfigError
from assignsvc.documents.experiment_file import dump_experiment, read_experiments
from tests.support import Cli


class TestAttributeFlags:
    """--attr values are JSON when they parse, text otherwise; dotted keys nest."""

    def test_parsing(self) -> None:
        got = parse_attributes(
            ["age=30", "country=US", "beta=true", "account.plan=pro", "id=007", 'tags=["a"]'],
            '{"account": {"seats": 5}}',
        )
        assert got == {
            "age": 30,
            "country": "US",
            "beta": True,
            "account": {"seats": 5, "plan": "pro"},
            "id": "007",
            "tags": ["a"],
        }
        assert parse_attributes([], None) is None

    @pytest.mark.parametrize(
        ("pairs", "document"), [(["novalue"], None), ([], "[1]"), ([], "{bad"), (["a=1", "a.b=2"], None)]
    )
    def test_refused(self, pairs: list[str], document: str | None) -> None:
        with pytest.raises(ConfigError):
            parse_attributes(pairs, document)


class TestTargetingCommands:
    """create --condition, assign --attr, update --condition, groups, and file round trips."""

    def test_condition_and_attributes(self, cli: Cli) -> None:
        made = cli(
            "experiments",
            "create",
            "geo",
            "--arms",
            "a,b",
            "--status",
            "running",
            "--condition",
            '{"country": {"$in": ["US"]}, "account.plan": "pro"}',
        )
        assert made.code == 0, made.err
        assert "a:0.5" in made.out
        details = cli("experiments", "get", "geo").out
        assert 'condition           {"country":{"$in":["US"]},"account.plan":"pro"}' in details
        assert "hash_attribute      (participant id)" in details
        yes = cli("assign", "geo", "p1", "--attr", "country=US", "--attr", "account.plan=pro")
        assert yes.code == 0 and "new_assignment" in yes.out
        no = cli("assign", "geo", "p2", "--attributes", '{"country": "FR"}')
        assert no.out == "p2 -> not in experiment (not_eligible)\n"
        sticky = cli("assign", "geo", "p1", "--attr", "country=FR")
        assert "sticky" in sticky.out
        assert cli("experiments", "update", "geo", "--condition", "none").code == 0
        assert "new_assignment" in cli("assign", "geo", "p3").out
        bad = cli("experiments", "update", "geo", "--condition", '{"a": {"$regex": "("}}')
        assert bad.code == 1 and "experiment.condition: a.$regex: invalid regex" in bad.err

    def test_hash_attribute(self, cli: Cli) -> None:
        assert (
            cli(
                "experiments", "create", "dev", "--arms", "a,b", "--status", "running", "--hash-attribute", "deviceId"
            ).code
            == 0
        )
        first = cli("assign", "dev", "p1", "--attr", "deviceId=d1")
        other = cli("assign", "dev", "p2", "--attr", "deviceId=d1", "-o", "json")
        assert json.loads(other.out)["reason"] == "ASSIGNMENT_REASON_STICKY"
        assert json.loads(other.out)["arm"]["id"] in first.out
        assert "missing_hash_attribute" in cli("assign", "dev", "p3").out

    def test_groups(self, cli: Cli, tmp_path: Path) -> None:
        made = cli("groups", "create", "beta", "--ids", "u1,u2", "--name", "Beta")
        assert made.code == 0 and made.out.split("\n")[1].split()[:3] == ["beta", "Beta", "2"]
        big = tmp_path / "ids.txt"
        big.write_text("\n".join(f"id-{i}" for i in range(25_000)) + "\n")
        added = cli("groups", "add", "beta", "--ids-file", str(big), "-o", "json")
        assert added.code == 0, added.err
        assert json.loads(added.out)["size"] == "25002"  # uint64 is a string in proto JSON
        assert json.loads(cli("groups", "remove", "beta", "--ids", "u1", "-o", "json").out)["size"] == "25001"
        replaced = cli("groups", "replace", "beta", "--ids", "x,y", "-o", "json")
        assert json.loads(replaced.out)["size"] == "2"
        assert (
            cli(
                "experiments",
                "create",
                "gated",
                "--arms",
                "a,b",
                "--status",
                "running",
                "--condition",
                '{"id": {"$inGroup": "beta"}}',
            ).code
            == 0
        )
        assert "new_assignment" in cli("assign", "gated", "p1", "--attr", "id=x").out
        assert "not_eligible" in cli("assign", "gated", "p2", "--attr", "id=u2").out
        in_use = cli("groups", "delete", "beta")
        assert in_use.code == 1 and "FAILED_PRECONDITION" in in_use.err and "gated" in in_use.err
        listed = cli("groups", "list")
        assert listed.code == 0 and "beta" in listed.out
        big_new = cli("groups", "create", "huge", "--ids-file", str(big), "-o", "json")
        assert json.loads(big_new.out)["size"] == "25000"
        assert cli("groups", "delete", "huge").out == "deleted saved group huge\n"

    def test_yaml_round_trip(self, cli: Cli, tmp_path: Path) -> None:
        assert cli("groups", "create", "beta", "--ids", "u1").code == 0
        path = tmp_path / "exp.yaml"
        path.write_text(
            "id: targeted\narms: [{id: a, weight: 0.5}, {id: b, weight: 0.5}]\nstatus: running\n"
            "condition:\n  $or:\n    - {country: {$in: [US, CA]}}\n    - {id: {$inGroup: beta}}\n"
            "hash_attribute: deviceId\nfallback_attribute: userId\n"
        )
        assert cli("apply", str(path)).out.startswith("created targeted")
        dumped = cli("experiments", "get", "targeted", "-o", "yaml").out
        assert "condition:\n  $or:\n" in dumped and "hash_attribute: deviceId" in dumped
        again = tmp_path / "again.yaml"
        again.write_text(dumped)
        assert cli("apply", str(again)).out == "unchanged targeted\n"
        [entry] = read_experiments(dumped)
        assert read_experiments(dump_experiment(entry.experiment))[0].experiment == entry.experiment
        path.write_text(path.read_text().replace("$in: [US, CA]", "$in: 3"))
        refused = cli("apply", str(path))
        assert refused.code == 1 and "condition: $or[0].country.$in: must be a list" in refused.err
