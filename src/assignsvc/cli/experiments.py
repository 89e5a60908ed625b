"""The experiment commands: `experiments ...`, `apply`, `assign` and `get-assignment`."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format

from assignsvc.api.convert import experiment_to_pb
from assignsvc.cli import bulk as cli_bulk
from assignsvc.cli import output as out
from assignsvc.cli.common import client_command, repeatable
from assignsvc.config import ConfigError
from assignsvc.documents.experiment_file import FileExperiment, read_experiments
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

# --- flag values -----------------------------------------------------------------------


def parse_arms(spec: str) -> list[epb.Arm]:
    """'control:0.5,treatment:0.5' -> arms; 'a,b,c' splits the weight equally."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--arms needs at least one arm")
    arms = []
    for part in parts:
        arm_id, sep, weight = part.partition(":")
        try:
            value = float(weight) if sep else 1.0 / len(parts)
        except ValueError:
            raise ConfigError(f"--arms: weight of {arm_id!r} is not a number: {weight!r}") from None
        arms.append(epb.Arm(id=arm_id, weight=value))
    return arms


def parse_values(specs: list[str]) -> dict[str, Any]:
    """['treatment={"color": "green"}', 'control=blue'] -> arm id -> value (JSON, else the text)."""
    values: dict[str, Any] = {}
    for spec in specs:
        arm_id, sep, text = spec.partition("=")
        if not sep or not arm_id:
            raise ConfigError(f"--value must look like ARM=VALUE, got {spec!r}")
        try:
            values[arm_id] = json.loads(text)
        except ValueError:
            values[arm_id] = text  # a bare word is a string value
    return values


def _set_values(arms: Any, values: dict[str, Any]) -> None:
    """Write --value's values into the arms (messages); an unknown arm id is an error."""
    known = {a.id for a in arms}
    for arm_id in values:
        if arm_id not in known:
            raise ConfigError(f"--value {arm_id}=...: no arm {arm_id!r}")
    for arm in arms:
        if arm.id in values:
            json_format.ParseDict(values[arm.id], arm.value)


def parse_namespace(spec: str) -> epb.Namespace:
    """'checkout:0:0.5' -> namespace 'checkout', range [0, 0.5)."""
    try:
        ns_id, start, end = spec.rsplit(":", 2)
        return epb.Namespace(id=ns_id, range_start=float(start), range_end=float(end))
    except ValueError:
        raise ConfigError(f"--namespace must look like ID:START:END, got {spec!r}") from None


def parse_forced(spec: str) -> tuple[str, str]:
    """'alice=treatment' -> ('alice', 'treatment'); arm ids never hold '=', participant ids may."""
    participant, sep, arm = spec.rpartition("=")
    if not sep or not participant or not arm:
        raise ConfigError(f"--force must look like PARTICIPANT=ARM, got {spec!r}")
    return participant, arm


def parse_attributes(pairs: Sequence[str], document: str | None) -> dict[str, Any] | None:
    """--attributes JSON, then each --attr KEY=VALUE: VALUE is read as JSON when it is JSON
    (30, true, ["a"]), else as text; a dotted KEY (account.plan) makes nested objects."""
    if document is None and not pairs:
        return None
    attributes: dict[str, Any] = {}
    if document is not None:
        try:
            attributes = json.loads(document)
        except ValueError as exc:
            raise ConfigError(f"--attributes is not valid JSON: {exc}") from None
        if not isinstance(attributes, dict):
            raise ConfigError("--attributes must be a JSON object")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--attr must look like KEY=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        target = attributes
        for name in parents:
            nested = target.setdefault(name, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"--attr {key}: {name!r} is already a value, not an object")
            target = nested
        target[leaf] = value
    return attributes


def _enum_value(enum: Any, prefix: str, name: str) -> int:
    return int(enum.Value(f"{prefix}{name.upper()}"))


def _experiment_from_args(args: argparse.Namespace) -> epb.Experiment:
    exp = epb.Experiment(
        id=args.id,
        name=args.name or "",
        arms=parse_arms(args.arms),
        seed=args.seed or "",
        bucket_version=args.bucket_version,
        min_bucket_version=args.min_bucket_version,
    )
    _set_values(exp.arms, parse_values(args.value))
    exp.hash_algorithm = _enum_value(epb.HashAlgorithm, "HASH_ALGORITHM_", args.hash_algorithm)  # type: ignore[assignment]
    exp.status = _enum_value(epb.ExperimentStatus, "EXPERIMENT_STATUS_", args.status)  # type: ignore[assignment]
    exp.type = _enum_value(epb.ExperimentType, "EXPERIMENT_TYPE_", args.type)  # type: ignore[assignment]
    if args.coverage is not None:
        exp.coverage = args.coverage
    if args.namespace:
        exp.namespace.CopyFrom(parse_namespace(args.namespace))
    exp.condition = args.condition or ""
    exp.hash_attribute = args.hash_attribute or ""
    exp.fallback_attribute = args.fallback_attribute or ""
    exp.redis_failure_policy = _enum_value(  # type: ignore[assignment]
        epb.RedisFailurePolicy, "REDIS_FAILURE_POLICY_", args.redis_failure_policy
    )
    return exp


# --- commands ----------------------------------------------------------------------------
# --- commands ----------------------------------------------------------------------------


def _create(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    request = espb.CreateExperimentRequest(experiment=_experiment_from_args(args))
    out.print_experiments([stub.CreateExperiment(request, timeout=timeout).experiment], args.output, as_list=False)


def _get(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    reply = stub.GetExperiment(espb.GetExperimentRequest(experiment_id=args.id), timeout=timeout)
    out.print_experiment_details(reply.experiment, args.output)


def _list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    experiments = out.all_pages(
        lambda token: stub.ListExperiments(
            espb.ListExperimentsRequest(page_size=args.page_size, page_token=token), timeout=timeout
        ),
        "experiments",
    )
    out.print_experiments(experiments, args.output, as_list=True)


def _patch_arms(args: argparse.Namespace, current: epb.Experiment, patch: epb.Experiment) -> None:
    """The arms of an update: --arms (names and values of existing arms kept) or the
    current arms, with --value applied."""
    kept = {a.id: a for a in current.arms}
    for a in parse_arms(args.arms) if args.arms is not None else current.arms:
        arm = patch.arms.add(id=a.id, name=kept[a.id].name if a.id in kept else a.id, weight=a.weight)
        if a.id in kept:
            arm.value.CopyFrom(kept[a.id].value)
    _set_values(patch.arms, parse_values(args.value))


def _update(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    """UpdateExperiment with a field mask of exactly the flags given.

    --arms keeps the names of arms that exist already, and --force adds to the forced
    arms (unless --clear-forced): both read the experiment first, and then send its
    etag (unless --etag was given), so a change made in between is never overwritten.
    """
    stub = egrpc.ExperimentServiceStub(channel)
    patch = epb.Experiment(id=args.id, etag=args.etag or "")
    mask: list[str] = []
    current = None
    if args.arms is not None or args.value or (args.force and not args.clear_forced):
        current = stub.GetExperiment(espb.GetExperimentRequest(experiment_id=args.id), timeout=timeout).experiment
        patch.etag = args.etag or current.etag
    if args.name is not None:
        mask.append("name")
        patch.name = args.name
    if args.arms is not None or args.value:
        mask.append("arms")
        assert current is not None
        _patch_arms(args, current, patch)
    if args.coverage is not None:
        mask.append("coverage")
        patch.coverage = args.coverage
    if args.namespace is not None:
        mask.append("namespace")
        if args.namespace != "none":
            patch.namespace.CopyFrom(parse_namespace(args.namespace))
    if args.min_bucket_version is not None:
        mask.append("min_bucket_version")
        patch.min_bucket_version = args.min_bucket_version
    mask += _window_and_condition(args, patch)
    if args.redis_failure_policy is not None:
        mask.append("redis_failure_policy")
        patch.redis_failure_policy = _enum_value(  # type: ignore[assignment]
            epb.RedisFailurePolicy, "REDIS_FAILURE_POLICY_", args.redis_failure_policy
        )
    if args.force or args.clear_forced:
        mask.append("forced_arms")
        forced = {} if args.clear_forced or current is None else dict(current.forced_arms)
        forced.update(parse_forced(spec) for spec in args.force)
        patch.forced_arms.update(forced)
    if not mask:
        raise ConfigError("experiments update: nothing to change (give at least one field flag; see --help)")
    request = espb.UpdateExperimentRequest(experiment=patch, update_mask=field_mask_pb2.FieldMask(paths=mask))
    out.print_experiments([stub.UpdateExperiment(request, timeout=timeout).experiment], args.output, as_list=False)


def _window_and_condition(args: argparse.Namespace, patch: epb.Experiment) -> list[str]:
    """The start/end time and condition flags of `update` into the patch; their mask paths."""
    mask = []
    for field in ("start_time", "end_time"):
        value = getattr(args, field)
        if value is not None:
            mask.append(field)
            if value != "none":
                getattr(patch, field).CopyFrom(cli_bulk.timestamp_flag(value, "--" + field.replace("_", "-")))
    if args.condition is not None:
        mask.append("condition")
        patch.condition = "" if args.condition == "none" else args.condition
    return mask


def _delete(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    stub.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id=args.id, etag=args.etag or ""), timeout=timeout)
    out.print_deleted(args.id, args.output)


_STATUS_CHANGES = {
    "start": ("StartExperiment", espb.StartExperimentRequest, "DRAFT -> RUNNING"),
    "pause": ("PauseExperiment", espb.PauseExperimentRequest, "RUNNING -> PAUSED: no new assignments"),
    "resume": ("ResumeExperiment", espb.ResumeExperimentRequest, "PAUSED -> RUNNING"),
    "stop": ("StopExperiment", espb.StopExperimentRequest, "RUNNING or PAUSED -> STOPPED, for good"),
}


def _change_status(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    method, request_type, _ = _STATUS_CHANGES[args.action]
    call = getattr(egrpc.ExperimentServiceStub(channel), method)
    fields = {"experiment_id": args.id, "etag": args.etag or ""}
    if args.action == "stop" and args.release:
        fields["released_arm_id"] = args.release
    reply = call(request_type(**fields), timeout=timeout)
    out.print_experiments([reply.experiment], args.output, as_list=False)


def _rerandomize(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    request = espb.RerandomizeExperimentRequest(
        experiment_id=args.id,
        etag=args.etag or "",
        seed=args.seed or "",
        block_previous_participants=args.block_previous,
    )
    out.print_experiments([stub.RerandomizeExperiment(request, timeout=timeout).experiment], args.output, as_list=False)


def _stats(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    request = espb.GetExperimentStatsRequest(experiment_id=args.id)
    if args.bucket_version is not None:
        request.bucket_version = args.bucket_version
    out.print_stats(stub.GetExperimentStats(request, timeout=timeout), args.output)


def _read_source(source: str) -> str | bytes:
    if source == "-":
        stream = getattr(sys.stdin, "buffer", sys.stdin)  # bytes when there is a buffer: the reader decodes
        data: str | bytes = stream.read()
        return data
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None


def apply_request_experiment(entry: FileExperiment) -> epb.Experiment:
    """The ApplyExperiments message for one file experiment: what the file says, nothing more.

    The seed is sent as written (empty keeps the stored one) and the status only when
    the file gives one; output-only fields and the etag stay empty.
    """
    message = experiment_to_pb(entry.experiment)
    message.seed = entry.experiment.seed
    if entry.status is None:
        message.status = epb.EXPERIMENT_STATUS_UNSPECIFIED
    for output_only in ("create_time", "update_time", "etag"):
        message.ClearField(output_only)
    return message


def _file_field(entries: Sequence[FileExperiment]) -> Callable[[str], str]:
    """Maps a field of the ApplyExperiments request (`experiments[2].coverage`) to its path in the file."""

    def to_file(field: str) -> str:
        head, sep, rest = field.partition("].")
        if not (head.startswith("experiments[") and sep and head[12:].isdigit()):
            return field
        index = int(head[12:])
        if index >= len(entries):
            return field
        rest = rest.replace("namespace.range_start", "namespace.range[0]").replace(
            "namespace.range_end", "namespace.range[1]"
        )
        base = entries[index].path
        return f"{base}.{rest}" if base else rest

    return to_file


def _apply(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> int:
    """Apply a file: validated here first (nothing is sent if any experiment is invalid)."""
    name = "standard input" if args.file == "-" else args.file
    try:
        entries = read_experiments(_read_source(args.file))
    except InvalidArgumentError as exc:
        headline = f"error: INVALID_ARGUMENT: {name}: {len(exc.violations)} problem(s); nothing was sent"
        print(out.describe_violations(headline, exc.violations), file=sys.stderr)
        return 1
    for entry in entries:
        for note in entry.notes:
            print(f"note: {entry.experiment.id}: {note}", file=sys.stderr)
    request = espb.ApplyExperimentsRequest(
        experiments=[apply_request_experiment(e) for e in entries], dry_run=args.dry_run
    )
    try:
        reply = egrpc.ExperimentServiceStub(channel).ApplyExperiments(request, timeout=timeout)
    except grpc.RpcError as error:
        print(out.describe_rpc_error(error, _file_field(entries)), file=sys.stderr)
        return 1
    out.print_apply(reply, args.output, dry_run=args.dry_run)
    return 0


def _assign(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    _ask(agrpc.AssignmentServiceStub(channel).Assign, apb.AssignRequest, args, timeout)


def _lookup(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    _ask(agrpc.AssignmentServiceStub(channel).GetAssignment, apb.GetAssignmentRequest, args, timeout)


def _ask(call: Callable[..., Any], request_type: Callable[..., Any], args: argparse.Namespace, timeout: float) -> None:
    """Assign or GetAssignment for the participant and attributes the flags name; prints the answer."""
    request = request_type(experiment_id=args.experiment, participant_id=args.participant)
    attributes = parse_attributes(args.attr, args.attributes)
    if attributes is not None:
        request.attributes.update(attributes)
    out.print_assignment(call(request, timeout=timeout).assignment, args.output)


# --- the parsers -------------------------------------------------------------------------

_POLICIES = ("fail_closed", "fail_open")
_POLICY_HELP = "when Redis fails, Assign answers UNAVAILABLE (fail_closed) or the hash's arm, unstored (fail_open)"


def _targeting_flags(create: argparse.ArgumentParser) -> None:
    create.add_argument("--value", action="append", default=[], metavar="ARM=VALUE", help=_VALUE_HELP)
    create.add_argument("--condition", help='eligibility condition, GrowthBook syntax as JSON: \'{"country": "US"}\'')
    create.add_argument("--hash-attribute", help="attribute hashed and stored instead of the participant id")
    create.add_argument("--fallback-attribute", help="attribute used when the hash attribute is missing")
    create.add_argument("--redis-failure-policy", default="fail_closed", choices=_POLICIES, help=_POLICY_HELP)


def _update_answer_flags(update: argparse.ArgumentParser) -> None:
    update.add_argument("--value", action="append", default=[], metavar="ARM=VALUE", help=_VALUE_HELP)
    update.add_argument("--condition", help="new eligibility condition (JSON), or 'none' to target everyone")
    update.add_argument("--redis-failure-policy", choices=_POLICIES, help=_POLICY_HELP)


_VALUE_HELP = 'the arm\'s value, JSON or a bare string, e.g. treatment=\'{"color": "green"}\' (repeatable)'


def _status_commands(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """start, pause, resume and stop (which may release an arm)."""
    for action, (_, _, transition) in _STATUS_CHANGES.items():
        change = sub.add_parser(action, parents=parents, help=f"{action} an experiment ({transition})")
        change.add_argument("id")
        if action == "stop":
            change.add_argument(
                "--release", metavar="ARM", help="answer every participant this arm from now on (ship the winner)"
            )
        change.set_defaults(run=client_command(_change_status))


def _experiment_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    etag = argparse.ArgumentParser(add_help=False)
    etag.add_argument("--etag", help="act only if the experiment still has this etag (else ABORTED)")

    create = sub.add_parser("create", parents=[client], help="create an experiment")
    create.add_argument("id")
    create.add_argument("--arms", required=True, help="control:0.5,treatment:0.5 (no weights: equal)")
    create.add_argument("--name")
    create.add_argument("--coverage", type=float)
    create.add_argument("--namespace", help="ID:START:END, e.g. checkout:0:0.5")
    create.add_argument("--seed")
    create.add_argument("--hash-algorithm", default="murmur3", choices=("murmur3", "growthbook_v1", "growthbook_v2"))
    create.add_argument("--bucket-version", type=int, default=0)
    create.add_argument("--min-bucket-version", type=int, default=0)
    create.add_argument("--status", default="draft", choices=("draft", "running"))
    create.add_argument("--type", default="online", choices=("online", "preassigned"))
    _targeting_flags(create)
    create.set_defaults(run=client_command(_create))
    get = sub.add_parser("get", parents=[client], help="show one experiment (-o yaml: as an experiment file)")
    get.add_argument("id")
    get.set_defaults(run=client_command(_get))
    lst = sub.add_parser("list", parents=[client], help="list every experiment (-o yaml: as an experiment file)")
    lst.add_argument("--page-size", type=int, default=100)
    lst.set_defaults(run=client_command(_list))

    update = sub.add_parser(
        "update",
        parents=[client, etag],
        help="change the fields named by the flags given",
        description=inspect.cleandoc(_update.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    update.add_argument("id")
    update.add_argument("--name")
    update.add_argument("--arms", help="control:0.3,treatment:0.7 (ids cannot change once assigned)")
    update.add_argument("--coverage", type=float)
    update.add_argument("--namespace", help="ID:START:END, or 'none' to leave every namespace")
    update.add_argument("--min-bucket-version", type=int)
    update.add_argument("--start-time", help="RFC 3339, e.g. 2025-01-01T00:00:00Z, or 'none' to clear")
    update.add_argument("--end-time", help="RFC 3339, or 'none' to clear")
    repeatable(
        update, "--force", "PARTICIPANT=ARM", "always answer ARM to PARTICIPANT (repeatable; adds to the forced arms)"
    )
    update.add_argument("--clear-forced", action="store_true", help="drop every forced arm (before any --force)")
    _update_answer_flags(update)
    update.set_defaults(run=client_command(_update))
    delete = sub.add_parser("delete", parents=[client, etag], help="archive an experiment (its id is never reused)")
    delete.add_argument("id")
    delete.set_defaults(run=client_command(_delete))
    _status_commands(sub, [client, etag])
    rerandomize = sub.add_parser(
        "rerandomize", parents=[client, etag], help="new bucket version and seed: everyone is bucketed afresh"
    )
    rerandomize.add_argument("id")
    rerandomize.add_argument("--seed", help="the new seed (default: a random one)")
    rerandomize.add_argument(
        "--block-previous", action="store_true", help="block participants holding an arm from an older version instead"
    )
    rerandomize.set_defaults(run=client_command(_rerandomize))
    stats = sub.add_parser("stats", parents=[client], help="assignments per arm and the sample ratio mismatch test")
    stats.add_argument("id")
    stats.add_argument("--bucket-version", type=int, help="count this version (default: the current one)")
    stats.set_defaults(run=client_command(_stats))


def add_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    """`experiments ...`, `apply`, `assign` and `get-assignment` under the top-level parser."""
    experiments = sub.add_parser("experiments", help="create, read, change and delete experiments")
    _experiment_commands(experiments.add_subparsers(dest="action", required=True), client)

    apply = sub.add_parser(
        "apply",
        parents=[client],
        help="create or update the experiments of a YAML/JSON file",
        description="Create or update every experiment of FILE at once, all or nothing "
        "(the format: docs/experiments.md, 'Experiments as files').",
    )
    apply.add_argument("file", metavar="FILE", help="experiment file (YAML or JSON; GrowthBook JSON too); '-' = stdin")
    apply.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    apply.set_defaults(run=client_command(_apply))

    attrs = argparse.ArgumentParser(add_help=False)
    repeatable(
        attrs,
        "--attr",
        "KEY=VALUE",
        "a participant attribute (repeatable; VALUE is JSON if it parses, else text; a.b=x nests)",
    )
    attrs.add_argument("--attributes", metavar="JSON", help="participant attributes as a JSON object")
    assign = sub.add_parser("assign", parents=[client, attrs], help="assign a participant (creates on first sight)")
    assign.add_argument("experiment")
    assign.add_argument("participant")
    assign.set_defaults(run=client_command(_assign))
    lookup = sub.add_parser(
        "get-assignment", parents=[client, attrs], help="look up a stored assignment, never creates"
    )
    lookup.add_argument("experiment")
    lookup.add_argument("participant")
    lookup.set_defaults(run=client_command(_lookup))
