"""The `assignsvc` command: `serve`, and client commands that talk gRPC to a server."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assignsvc.config import ClientConfig, ConfigError, ServerConfig
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc


def _serve(args: argparse.Namespace) -> int:
    from assignsvc.server import serve  # noqa: PLC0415 - keep client commands light

    config = ServerConfig.load(
        os.environ,
        host=args.host, port=args.port, redis_url=args.redis_url, data_dir=args.data_dir,
        log_level=args.log_level, grace_period=args.grace_period,
    )
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(config))
    return 0


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


def parse_namespace(spec: str) -> epb.Namespace:
    """'checkout:0:0.5' -> namespace 'checkout', range [0, 0.5)."""
    try:
        ns_id, start, end = spec.rsplit(":", 2)
        return epb.Namespace(id=ns_id, range_start=float(start), range_end=float(end))
    except ValueError:
        raise ConfigError(f"--namespace must look like ID:START:END, got {spec!r}") from None


def _enum_value(enum: Any, prefix: str, name: str) -> int:
    return int(enum.Value(f"{prefix}{name.upper()}"))


def _experiment_from_args(args: argparse.Namespace) -> epb.Experiment:
    exp = epb.Experiment(
        id=args.id, name=args.name or "", arms=parse_arms(args.arms), seed=args.seed or "",
        bucket_version=args.bucket_version, min_bucket_version=args.min_bucket_version,
    )
    exp.hash_algorithm = _enum_value(epb.HashAlgorithm, "HASH_ALGORITHM_", args.hash_algorithm)  # type: ignore[assignment]
    exp.status = _enum_value(epb.ExperimentStatus, "EXPERIMENT_STATUS_", args.status)  # type: ignore[assignment]
    exp.type = _enum_value(epb.ExperimentType, "EXPERIMENT_TYPE_", args.type)  # type: ignore[assignment]
    if args.coverage is not None:
        exp.coverage = args.coverage
    if args.namespace:
        exp.namespace.CopyFrom(parse_namespace(args.namespace))
    return exp


def _short(enum_name: str) -> str:
    """'ASSIGNMENT_REASON_STICKY' -> 'sticky'."""
    for prefix in ("ASSIGNMENT_REASON_", "EXPERIMENT_STATUS_", "HASH_ALGORITHM_", "EXPERIMENT_TYPE_"):
        if enum_name.startswith(prefix):
            return enum_name[len(prefix):].lower()
    return enum_name.lower()


def _print_experiments(experiments: Sequence[epb.Experiment], output: str) -> None:
    if output == "json":
        docs = [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in experiments]
        print(json.dumps(docs if len(docs) != 1 else docs[0], indent=2))
        return
    print(f"{'ID':<24} {'STATUS':<8} {'HASH':<14} {'COVERAGE':>8}  ARMS")
    for e in experiments:
        arms = ", ".join(f"{a.id}:{a.weight:g}" for a in e.arms)
        status = _short(epb.ExperimentStatus.Name(e.status))
        algo = _short(epb.HashAlgorithm.Name(e.hash_algorithm))
        print(f"{e.id:<24} {status:<8} {algo:<14} {e.coverage:>8g}  {arms}")


def _print_assignment(a: apb.Assignment, output: str) -> None:
    if output == "json":
        print(json_format.MessageToJson(a, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
        return
    reason = _short(apb.AssignmentReason.Name(a.reason))
    if a.in_experiment:
        first_seen = a.first_seen_time.ToDatetime().isoformat() + "Z"
        print(f"{a.participant_id} -> {a.arm.id} (index {a.arm.index}, {reason}, "
              f"first seen {first_seen}, bucket version {a.bucket_version})")
    else:
        print(f"{a.participant_id} -> not in experiment ({reason})")


def _create(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    reply = stub.CreateExperiment(
        espb.CreateExperimentRequest(experiment=_experiment_from_args(args)), timeout=timeout
    )
    _print_experiments([reply.experiment], args.output)


def _get(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    reply = stub.GetExperiment(espb.GetExperimentRequest(experiment_id=args.id), timeout=timeout)
    _print_experiments([reply.experiment], args.output)


def _list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = egrpc.ExperimentServiceStub(channel)
    experiments: list[epb.Experiment] = []
    token = ""
    while True:
        reply = stub.ListExperiments(
            espb.ListExperimentsRequest(page_size=args.page_size, page_token=token), timeout=timeout
        )
        experiments += reply.experiments
        token = reply.next_page_token
        if not token:
            break
    _print_experiments(experiments, args.output)


def _assign(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = agrpc.AssignmentServiceStub(channel)
    request = apb.AssignRequest(experiment_id=args.experiment, participant_id=args.participant)
    _print_assignment(stub.Assign(request, timeout=timeout).assignment, args.output)


def _lookup(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = agrpc.AssignmentServiceStub(channel)
    request = apb.GetAssignmentRequest(experiment_id=args.experiment, participant_id=args.participant)
    _print_assignment(stub.GetAssignment(request, timeout=timeout).assignment, args.output)


def describe_rpc_error(error: grpc.RpcError) -> str:
    """One readable message: code, message and each field violation."""
    code = error.code().name if hasattr(error, "code") else "UNKNOWN"
    lines = [f"error: {code}: {error.details() if hasattr(error, 'details') else error}"]
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
    return "\n".join(lines)


def _client(command: Callable[[grpc.Channel, argparse.Namespace, float], None]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = ClientConfig.load(os.environ, target=args.target, timeout=args.timeout)
        with grpc.insecure_channel(config.target) as channel:
            try:
                command(channel, args, config.timeout_s)
            except grpc.RpcError as error:
                print(describe_rpc_error(error), file=sys.stderr)
                return 1
        return 0
    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="assignsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", help="bind address (ASSIGNSVC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port, 0 = any free (ASSIGNSVC_PORT, default 50051)")
    serve.add_argument("--redis-url", help="redis://, rediss:// or unix:// URL (ASSIGNSVC_REDIS_URL); "
                       "unset: an embedded Redis in --data-dir")
    serve.add_argument("--data-dir", help="embedded Redis data (ASSIGNSVC_DATA_DIR, default ./.assignsvc)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (ASSIGNSVC_LOG_LEVEL)")
    serve.add_argument("--grace-period", type=float, help="seconds to drain on SIGTERM (ASSIGNSVC_GRACE_PERIOD)")
    serve.set_defaults(run=_serve)

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--target", help="server host:port (ASSIGNSVC_TARGET, default 127.0.0.1:50051)")
    client.add_argument("--timeout", type=float, help="seconds per call (ASSIGNSVC_TIMEOUT, default 10)")
    client.add_argument("-o", "--output", choices=("table", "json"), default="table")

    experiments = sub.add_parser("experiments", help="create, get and list experiments")
    exp_sub = experiments.add_subparsers(dest="action", required=True)
    create = exp_sub.add_parser("create", parents=[client], help="create an experiment")
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
    create.set_defaults(run=_client(_create))
    get = exp_sub.add_parser("get", parents=[client], help="show one experiment")
    get.add_argument("id")
    get.set_defaults(run=_client(_get))
    lst = exp_sub.add_parser("list", parents=[client], help="list every experiment")
    lst.add_argument("--page-size", type=int, default=100)
    lst.set_defaults(run=_client(_list))

    assign = sub.add_parser("assign", parents=[client], help="assign a participant (creates on first sight)")
    assign.add_argument("experiment")
    assign.add_argument("participant")
    assign.set_defaults(run=_client(_assign))
    lookup = sub.add_parser("get-assignment", parents=[client], help="look up a stored assignment, never creates")
    lookup.add_argument("experiment")
    lookup.add_argument("participant")
    lookup.set_defaults(run=_client(_lookup))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `assignsvc` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"assignsvc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
