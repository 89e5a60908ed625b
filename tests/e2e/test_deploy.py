"""Deployment: the production mode that refuses an embedded Redis, and the deployment
files (Dockerfile, Kubernetes manifests, docs/operations.md) checked against the code
they configure, so that a new flag, variable or port cannot drift away from them."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import yaml

from assignsvc.cli.main import build_parser
from assignsvc.config import DEFAULT_PORT, ConfigError, ServerConfig
from assignsvc.v1 import assignment_service_pb2 as apb
from tests.support import Client, assign, free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
IMAGE_HTTP_PORT = 8080  # the image's ASSIGNSVC_HTTP_PORT
SRC = ROOT / "src" / "assignsvc"
DOCKERFILE = ROOT / "Dockerfile"
MANIFESTS = ROOT / "deploy" / "kubernetes"
OPERATIONS = ROOT / "docs" / "operations.md"
# ASSIGNSVC_ names in the code that are not environment variables, and why.
NOT_VARIABLES = {"ASSIGNSVC_ERROR": "the ErrorInfo reason of an unexpected error (errors.py)"}


# --- what the code defines: flags, variables -----------------------------------------------


def serve_parser() -> argparse.ArgumentParser:
    """The `serve` subcommand's parser, as `assignsvc serve` builds it."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["serve"]
    raise AssertionError("no subcommands")


def serve_flags() -> set[str]:
    """Every long option of `assignsvc serve` but --help."""
    return {
        opt
        for action in serve_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


def _sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "v1" not in p.relative_to(SRC).parts]


def variables_read() -> set[str]:
    """The ASSIGNSVC_* variables the code reads: every name config's `_pick(flag, env, NAME, ...)`
    looks up, and every ASSIGNSVC_* name spelled out anywhere in src (help texts, messages,
    a direct env lookup) but the few that are not variables (NOT_VARIABLES)."""
    picked = set()
    spelled = set()
    for path in _sources():
        text = path.read_text()
        picked |= {f"ASSIGNSVC_{n}" for n in re.findall(r'_pick\(\s*[^,]+,\s*env,\s*"([A-Z0-9_]+)"', text)}
        spelled |= set(re.findall(r"\bASSIGNSVC_[A-Z0-9_]+\b", text))
    return picked | (spelled - NOT_VARIABLES.keys())


def undocumented(text: str) -> set[str]:
    """The serve flags and variables that no table row of `text` names (as `--flag` or
    `ASSIGNSVC_NAME`, in backticks): a mention in passing is not a reference entry."""
    rows = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("|"))
    return {name for name in serve_flags() | variables_read() if f"`{name}`" not in rows}


class TestRequireExternalRedis:
    """ASSIGNSVC_REQUIRE_EXTERNAL_REDIS / --require-external-redis: no Redis URL, no start."""

    def test_off_by_default_so_the_embedded_redis_stays_the_default(self) -> None:
        config = ServerConfig.load({})
        assert config.require_external_redis is False and config.redis_url is None

    @pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
    def test_set_without_a_redis_url_fails_at_start(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS.*--redis-url"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": value})

    def test_set_with_a_redis_url_starts(self) -> None:
        env = {"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "1", "ASSIGNSVC_REDIS_URL": "redis://redis:6379/0"}
        config = ServerConfig.load(env)
        assert config.require_external_redis is True and config.redis_url == "redis://redis:6379/0"

    def test_the_flag_wins_over_the_environment(self) -> None:
        with pytest.raises(ConfigError, match="ASSIGNSVC_REQUIRE_EXTERNAL_REDIS"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "0"}, require_external_redis=True)
        assert ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "false"}).require_external_redis is False

    def test_a_value_that_is_not_a_boolean_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="ASSIGNSVC_REQUIRE_EXTERNAL_REDIS must be one of"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "maybe", "ASSIGNSVC_REDIS_URL": "redis://r"})

    def test_serve_exits_2_and_starts_no_redis(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "assignsvc",
                "serve",
                "--port",
                "0",
                "--require-external-redis",
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "ASSIGNSVC_REQUIRE_EXTERNAL_REDIS is set" in result.stderr
        assert not data_dir.exists()  # the embedded Redis never started (it creates its data dir)


class TestRedisRefusingWrites:
    """What docs/operations.md promises when Redis refuses writes (full with noeviction, or a
    demoted primary that became a read-only replica): new participants get UNAVAILABLE,
    returning ones are still answered from their stored row (the sticky cache off here)."""

    @pytest.mark.parametrize("refusal", ["maxmemory", "read-only replica"])
    def test_new_participants_unavailable_returning_ones_answered(
        self, server_config: ServerConfig, refusal: str
    ) -> None:
        with running_server(dataclasses.replace(server_config, cache_size=0)) as server:
            client = Client.connect(server.target)
            client.create("full")
            first = assign(client, "full", "returning")
            admin = redis.Redis.from_url(server_config.redis_url or "")
            try:
                if refusal == "maxmemory":
                    admin.config_set("maxmemory-policy", "noeviction")
                    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) - 100_000)
                else:
                    admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # nobody there
                with pytest.raises(grpc.RpcError) as refused:
                    assign(client, "full", "new")
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
                again = assign(client, "full", "returning")
                assert (again.arm.id, again.reason) == (first.arm.id, apb.ASSIGNMENT_REASON_STICKY)
            finally:
                admin.config_set("maxmemory", 0)
                admin.execute_command("REPLICAOF", "NO", "ONE")
                admin.close()
                client.channel.close()


# --- the Dockerfile ---------------------------------------------------------------------------


@dataclasses.dataclass
class Stage:
    """One FROM ... AS name stage: its base image (ARGs resolved) and its instructions."""

    base: str
    name: str
    instructions: list[tuple[str, str]]

    def all(self, keyword: str) -> list[str]:
        """The arguments of every `keyword` instruction of this stage."""
        return [args for key, args in self.instructions if key == keyword]


def dockerfile_stages(text: str) -> list[Stage]:
    """Instructions (continuations joined, comments dropped) grouped by stage."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue  # Docker drops comment lines, inside continuations too
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending.strip())
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name, []))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


def dockerignore_keeps(path: str, patterns: list[str]) -> bool:
    """Whether Docker sends `path` (or a file under it) in the build context: the last
    matching pattern decides, `!` re-includes (Docker's rule)."""
    keep = True
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in patterns:
        negated = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            keep = negated
    return keep


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE.read_text())


class TestDockerfile:
    """Multi-stage on slim bases; the image runs `serve` as a numeric non-root user on the
    server's default port, in production mode, with flags the CLI has."""

    def test_multi_stage_on_slim_bases(self, stages: list[Stage]) -> None:
        assert len(stages) >= 2
        assert all("slim" in stage.base for stage in stages), [stage.base for stage in stages]
        final = stages[-1]
        copies = final.all("COPY")
        assert copies and all(c.startswith("--from=") for c in copies), "the final stage takes only built things"

    def test_generated_code_is_built_in_the_build_stage(self, stages: list[Stage]) -> None:
        runs = " ".join(" ".join(stage.all("RUN")) for stage in stages[:-1])
        assert "grpc_tools.protoc" in runs and "protos/assignsvc/v1/*.proto" in runs
        assert "--grpc_python_out=src" in runs

    def test_runs_as_a_numeric_non_root_user(self, stages: list[Stage]) -> None:
        users = stages[-1].all("USER")
        assert users, "no USER in the final stage: it would run as root"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit() and int(uid) != 0
        assert not gid or (gid.isdigit() and int(gid) != 0)

    def test_exposes_the_servers_default_port(self, stages: list[Stage]) -> None:
        assert stages[-1].all("EXPOSE") == [f"{DEFAULT_PORT} {IMAGE_HTTP_PORT}"]

    def test_entrypoint_serves_in_production_mode_with_known_flags(self, stages: list[Stage]) -> None:
        entrypoint = json.loads(stages[-1].all("ENTRYPOINT")[-1])  # exec form: signals reach the server
        assert entrypoint[:2] == ["assignsvc", "serve"]
        flags = [word.split("=")[0] for word in entrypoint[2:] if word.startswith("--")]
        assert set(flags) <= serve_flags(), set(flags) - serve_flags()
        serve_parser().parse_args(entrypoint[2:])  # and they parse (exit 2 otherwise)
        env = self._env(stages[-1])
        assert "--require-external-redis" in flags or env.get("ASSIGNSVC_REQUIRE_EXTERNAL_REDIS") == "1"
        assert "--redis-url" not in flags and "ASSIGNSVC_REDIS_URL" not in env  # from the deployment

    def test_environment_names_are_read_by_the_server_and_bind_all_interfaces(self, stages: list[Stage]) -> None:
        env = self._env(stages[-1])
        named = {k for k in env if k.startswith("ASSIGNSVC_")}
        assert named <= variables_read(), named - variables_read()
        assert env["ASSIGNSVC_HOST"] == "0.0.0.0"
        assert env["ASSIGNSVC_HTTP_PORT"] == str(IMAGE_HTTP_PORT)

    def test_build_context_keeps_what_the_build_copies(self, stages: list[Stage]) -> None:
        patterns = [
            line.strip()
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        sources = [
            word
            for stage in stages
            for copy in stage.all("COPY")
            if not copy.startswith("--from")
            for word in shlex.split(copy)[:-1]
        ]
        assert sources
        for source in sources:
            assert (ROOT / source).exists(), source
            assert dockerignore_keeps(source, patterns), f"{source} is excluded by .dockerignore"
        for local in (".venv", ".assignsvc", "benchmarks/results", "tests", ".git"):
            assert not dockerignore_keeps(local, patterns), f"{local} would be sent to the build"

    @staticmethod
    def _env(stage: Stage) -> dict[str, str]:
        env = {}
        for args in stage.all("ENV"):
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
        return env


# --- the Kubernetes manifests -----------------------------------------------------------------

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def manifests() -> list[dict[str, Any]]:
    """Every YAML document under deploy/kubernetes (kustomization included)."""
    docs = []
    for path in sorted([*MANIFESTS.glob("*.yaml"), *MANIFESTS.glob("*.yml")]):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in docs if d.get("kind") in WORKLOADS]
    return specs + [d["spec"] for d in docs if d.get("kind") == "Pod"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers and init containers (assignsvc runs as a native sidecar: an init container)."""
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def is_assignsvc(container: dict[str, Any]) -> bool:
    return "assignsvc" in container["image"].rsplit("/", 1)[-1].split(":")[0]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def env_names(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Variable name -> its `env` entry, ConfigMap keys from `envFrom` included (as {"value": ...})."""
    names: dict[str, dict[str, Any]] = {}
    maps = by_kind(docs, "ConfigMap")
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in maps, f"envFrom names ConfigMap {ref!r}, which no manifest defines"
        names |= {key: {"value": value} for key, value in maps[ref].get("data", {}).items()}
    names |= {entry["name"]: entry for entry in container.get("env", [])}
    return names


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    found = manifests()
    assert found, "no manifests under deploy/kubernetes"
    return found


class TestKubernetesManifests:
    """The sidecar example: ports and gRPC probes on the server's default port, variables
    the server reads, the Redis URL from an existing Secret key, resource requests everywhere."""

    def test_a_sidecar_example_beside_an_application(self, docs: list[dict[str, Any]]) -> None:
        specs = pod_specs(docs)
        assert specs
        for spec in specs:
            found = containers(spec)
            assert sum(is_assignsvc(c) for c in found) == 1, "one assignsvc container per pod"
            assert any(not is_assignsvc(c) for c in found), "an application container beside it"

    def test_container_port_and_native_grpc_probes_use_the_default_port(self, docs: list[dict[str, Any]]) -> None:
        for spec in pod_specs(docs):
            sidecar = next(c for c in containers(spec) if is_assignsvc(c))
            assert DEFAULT_PORT in [p["containerPort"] for p in sidecar["ports"]]
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe == "startupProbe" and probe not in sidecar:
                    continue
                assert sidecar[probe]["grpc"]["port"] == DEFAULT_PORT, probe
                assert sidecar[probe]["grpc"].get("service", "") == "", "the server reports health for ''"

    def test_variables_are_ones_the_code_reads(self, docs: list[dict[str, Any]]) -> None:
        for spec in pod_specs(docs):
            for container in containers(spec):
                named = {k for k in env_names(container, docs) if k.startswith("ASSIGNSVC_")}
                assert named <= variables_read(), f"{container['name']}: {named - variables_read()}"

    def test_the_application_dials_its_sidecar_on_the_default_port(self, docs: list[dict[str, Any]]) -> None:
        for spec in pod_specs(docs):
            for app in (c for c in containers(spec) if not is_assignsvc(c)):
                target = env_names(app, docs)["ASSIGNSVC_TARGET"]["value"]
                assert target == f"127.0.0.1:{DEFAULT_PORT}"

    def test_the_redis_url_comes_from_a_secret_key_that_exists(self, docs: list[dict[str, Any]]) -> None:
        secrets = by_kind(docs, "Secret")
        for spec in pod_specs(docs):
            sidecar = next(c for c in containers(spec) if is_assignsvc(c))
            entry = env_names(sidecar, docs)["ASSIGNSVC_REDIS_URL"]
            ref = entry["valueFrom"]["secretKeyRef"]  # never a plain value: it holds the password
            assert ref["name"] in secrets, f"no Secret {ref['name']!r} under deploy/kubernetes"
            secret = secrets[ref["name"]]
            assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}
        for doc in docs:  # and no ConfigMap carries it in the clear
            if doc.get("kind") == "ConfigMap":
                assert "ASSIGNSVC_REDIS_URL" not in doc.get("data", {})

    def test_resource_requests_are_set(self, docs: list[dict[str, Any]]) -> None:
        for spec in pod_specs(docs):
            for container in containers(spec):
                requests = container.get("resources", {}).get("requests", {})
                assert {"cpu", "memory"} <= requests.keys(), container["name"]

    def test_runs_as_the_images_user_and_drains_within_the_grace_period(
        self, docs: list[dict[str, Any]], stages: list[Stage]
    ) -> None:
        uid = int(stages[-1].all("USER")[-1].partition(":")[0])
        for spec in pod_specs(docs):
            sidecar = next(c for c in containers(spec) if is_assignsvc(c))
            context = {**spec.get("securityContext", {}), **sidecar.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", uid) == uid
            grace = float(env_names(sidecar, docs).get("ASSIGNSVC_GRACE_PERIOD", {"value": "5"})["value"])
            assert spec.get("terminationGracePeriodSeconds", 30) > grace

    @pytest.mark.parametrize("variable", ["ASSIGNSVC_METRICS_PORT", "ASSIGNSVC_HTTP_PORT"])
    def test_metrics_and_http_ports_are_container_ports(self, docs: list[dict[str, Any]], variable: str) -> None:
        for spec in pod_specs(docs):
            sidecar = next(c for c in containers(spec) if is_assignsvc(c))
            port = env_names(sidecar, docs).get(variable, {"value": "0"})["value"]
            assert int(port), f"the sidecar example sets {variable}"
            assert int(port) in [p["containerPort"] for p in sidecar["ports"]]
            others = [p["containerPort"] for c in containers(spec) if not is_assignsvc(c) for p in c.get("ports", [])]
            assert int(port) not in others, "a pod's containers share its ports"

    def test_kustomization_lists_existing_files(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            if doc.get("kind") == "Kustomization":
                assert all((MANIFESTS / name).is_file() for name in doc["resources"])


# --- docs/operations.md -----------------------------------------------------------------------


class TestOperationsDoc:
    """docs/operations.md documents every `serve` flag and every ASSIGNSVC_* variable the code
    reads: add a flag or a variable without documenting it there and this fails."""

    def test_every_flag_and_variable_is_documented(self) -> None:
        missing = undocumented(OPERATIONS.read_text())
        assert not missing, f"document in docs/operations.md (Configuration reference): {sorted(missing)}"

    def test_the_lists_come_from_the_code(self) -> None:
        # Guards against the derivation going blind (an empty list documents nothing).
        assert {"--host", "--port", "--redis-url", "--require-external-redis", "--workers"} <= serve_flags()
        assert {
            "ASSIGNSVC_REDIS_URL",
            "ASSIGNSVC_KEY_PREFIX",
            "ASSIGNSVC_CACHE_SIZE",
            "ASSIGNSVC_REQUIRE_EXTERNAL_REDIS",
        } <= variables_read()
        for name in NOT_VARIABLES:
            assert ServerConfig.load({name: "x"}) == ServerConfig.load({})  # not read: changes nothing

    def test_the_check_flags_what_is_missing(self) -> None:
        text = OPERATIONS.read_text()
        stripped = text.replace("`--workers`", "").replace("`ASSIGNSVC_CACHE_SIZE`", "")
        assert undocumented(stripped) == {"--workers", "ASSIGNSVC_CACHE_SIZE"}
