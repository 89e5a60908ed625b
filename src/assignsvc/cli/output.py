"""What the `assignsvc` client commands print: aligned tables, JSON or YAML (`-o`).

Messages arrive as generated protobuf objects, typed Any here: only the gRPC edge
(cli, service, server) imports assignsvc.v1, so enum names are read through each
message's descriptor. Experiments print as YAML in the experiment file format, so
`assignsvc experiments get ID -o yaml > f.yaml` can be edited and applied back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assignsvc.api.convert import experiment_from_pb
from assignsvc.core.stats import SRM_WARNING_P
from assignsvc.documents.experiment_file import dump_data, dump_experiment, dump_experiments, format_time
from assignsvc.errors import FieldViolation

OUTPUTS = ("table", "json", "yaml")
NONE = "-"


def all_pages(list_page: Callable[[str], Any], items: str) -> list[Any]:
    """Every item of a paged List call: list_page(token) returns one page's reply, whose
    repeated field `items` holds the page (the server caps a page, so a list takes several)."""
    found: list[Any] = []
    token = ""
    while True:
        reply = list_page(token)
        found += getattr(reply, items)
        token = reply.next_page_token
        if not token:
            return found


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; columns in `right` (numbers) right-aligned; no trailing blanks."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def enum_name(message: Any, field: str, prefix: str = "") -> str:
    """The short lower-case name of an enum field's value: reason 2 -> 'sticky'."""
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = getattr(message, field)
    member = enum.values_by_number.get(value)
    name = member.name if member is not None else str(value)
    return name.removeprefix(prefix).lower()


def as_dict(message: Any) -> dict[str, Any]:
    """A message as plain data with the .proto field names (what -o json/yaml print)."""
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))


def emit(data: object, output: str) -> None:
    """Plain data as JSON or YAML."""
    if output == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(dump_data(data), end="")


def _arms(message: Any) -> str:
    return ", ".join(f"{a.id}:{a.weight:g}" for a in message.arms)


def print_experiments(messages: Sequence[Any], output: str, *, as_list: bool) -> None:
    """Experiments as a table, as JSON (the API's messages) or as an experiment file."""
    if output == "yaml":
        models = [experiment_from_pb(m) for m in messages]
        print(dump_experiments(models) if as_list else dump_experiment(models[0]), end="")
        return
    if output == "json":
        docs = [as_dict(m) for m in messages]
        emit(docs if as_list else docs[0], output)
        return
    rows = [
        [
            m.id,
            enum_name(m, "status", "EXPERIMENT_STATUS_"),
            enum_name(m, "hash_algorithm", "HASH_ALGORITHM_"),
            f"{m.coverage:g}",
            str(m.bucket_version),
            m.etag,
            _arms(m),
        ]
        for m in messages
    ]
    print(table(["ID", "STATUS", "HASH", "COVERAGE", "VERSION", "ETAG", "ARMS"], rows, right=(3, 4, 5)))


def _phase(m: Any) -> str:
    """The current phase and since when (phase 0 began with the experiment)."""
    if not m.phase:
        return "0"
    return f"{m.phase} (since {format_time(m.phases[-1].start_time.ToMilliseconds())})"


def print_experiment_details(message: Any, output: str) -> None:
    """One experiment, every field on its own line (`experiments get`)."""
    if output != "table":
        print_experiments([message], output, as_list=False)
        return
    m = message
    ns = f"{m.namespace.id} [{m.namespace.range_start!r}, {m.namespace.range_end!r})"
    arm_rows = table(["ID", "WEIGHT", "NAME"], [[a.id, repr(a.weight), a.name] for a in m.arms])
    fields = [
        ("id", m.id),
        ("name", m.name),
        ("status", enum_name(m, "status", "EXPERIMENT_STATUS_")),
        ("arms", arm_rows.replace("\n", "\n" + " " * 20)),
        ("coverage", repr(m.coverage)),
        ("namespace", ns if m.HasField("namespace") else NONE),
        ("seed", m.seed),
        ("hash_algorithm", enum_name(m, "hash_algorithm", "HASH_ALGORITHM_")),
        ("bucket_version", f"{m.bucket_version} (min {m.min_bucket_version})"),
        ("type", enum_name(m, "type", "EXPERIMENT_TYPE_")),
        ("start_time", format_time(m.start_time.ToMilliseconds()) if m.HasField("start_time") else NONE),
        ("end_time", format_time(m.end_time.ToMilliseconds()) if m.HasField("end_time") else NONE),
        ("forced_arms", ", ".join(f"{p}={a}" for p, a in sorted(m.forced_arms.items())) or NONE),
        ("condition", m.condition or NONE),
        (
            "hash_attribute",
            " then ".join(a for a in (m.hash_attribute, m.fallback_attribute) if a) or "(participant id)",
        ),
        ("redis_failure", enum_name(m, "redis_failure_policy", "REDIS_FAILURE_POLICY_")),
        ("phase", _phase(m)),
        ("released_arm", m.released_arm_id or NONE),
        ("created", format_time(m.create_time.ToMilliseconds())),
        ("updated", format_time(m.update_time.ToMilliseconds())),
        ("etag", m.etag),
    ]
    print("\n".join(f"{name:<18}  {value}" for name, value in fields))


def print_assignment(assignment: Any, output: str) -> None:
    """One line: participant -> arm (index, reason, first seen, bucket version)."""
    if output != "table":
        data = json_format.MessageToDict(
            assignment, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        emit(data, output)
        return
    a = assignment
    reason = enum_name(a, "reason", "ASSIGNMENT_REASON_")
    if reason == "released":
        print(f"{a.participant_id} -> {a.arm.id} (released to everyone; not in the experiment)")
        return
    if not a.in_experiment:
        print(f"{a.participant_id} -> not in experiment ({reason})")
        return
    first_seen = format_time(a.first_seen_time.ToMilliseconds()) if a.HasField("first_seen_time") else "never stored"
    if not a.persisted and reason == "new_assignment":  # a FAIL_OPEN answer while Redis failed
        first_seen = "not stored: Redis unavailable, experiment fails open"
    print(
        f"{a.participant_id} -> {a.arm.id} (index {a.arm.index}, {reason}, "
        f"first seen {first_seen}, bucket version {a.bucket_version})"
    )


def print_stats(stats: Any, output: str) -> None:
    """Per-arm counts, observed and configured shares, total, and the SRM verdict; one
    block per phase once the split changed (each tested against its own weights)."""
    if output != "table":
        emit(as_dict(stats), output)
        return
    version = f"bucket version {stats.bucket_version}"
    if len(stats.phases) > 1:
        for phase in stats.phases:
            current = ", current" if phase is stats.phases[-1] else ""
            print(f"phase {phase.phase} (since {format_time(phase.start_time.ToMilliseconds())}{current}):")
            _print_counts(phase, f"{version}, phase {phase.phase}")
        print(f"total, every phase: {stats.total_assignments}")
    else:
        _print_counts(stats, version)
    print_strata(stats.strata)
    if stats.srm_warning:
        print(
            f"WARNING: sample ratio mismatch (p < {SRM_WARNING_P:g}): this split is very unlikely under the"
            " configured weights; find the cause (assignment, logging, targeting) before trusting results"
        )


def _print_counts(stats: Any, where: str) -> None:
    """One table of arm counts (a stats reply or one of its phases) and its SRM p-value."""
    rows = [
        [arm.arm_id, str(arm.assignments), f"{arm.observed_fraction:.2%}", f"{arm.weight:.2%}"] for arm in stats.arms
    ]
    rows.append(["total", str(stats.total_assignments), "", ""])
    print(table(["ARM", "ASSIGNMENTS", "OBSERVED", "WEIGHT"], rows, right=(1, 2, 3)))
    if stats.HasField("srm_p_value"):
        print(f"SRM p-value: {stats.srm_p_value:.4g} ({where})")
    else:
        print(f"SRM p-value: n/a ({where}: no assignments, or fewer than 2 arms with weight)")


def print_strata(strata: Sequence[Any]) -> None:
    """Per-stratum arm counts (PREASSIGNED experiments), one row per stratum."""
    if not strata:
        return
    arm_ids = [arm.arm_id for arm in strata[0].arms]
    rows = [
        [
            ", ".join(f"{k}={v}" for k, v in sorted(s.attributes.items())) or "(none)",
            *(str(arm.assignments) for arm in s.arms),
            str(s.total_assignments),
        ]
        for s in strata
    ]
    print(table(["STRATUM", *arm_ids, "TOTAL"], rows, right=range(1, len(arm_ids) + 2)))


def print_preassign(reply: Any, output: str) -> None:
    """What an upload stored, then the touched strata's counts."""
    if output != "table":
        emit(as_dict(reply), output)
        return
    print(
        f"{reply.received_count} participants: {reply.created_count} assigned now, "
        f"{reply.already_assigned_count} already assigned (kept their arm); bucket version {reply.bucket_version}"
    )
    print_strata(reply.strata)


def print_apply(reply: Any, output: str, *, dry_run: bool) -> None:
    """Per experiment `created|updated|unchanged ID`, then `  field: old -> new` for updates and dry runs."""
    if output != "table":
        emit(as_dict(reply), output)
        return
    for result in reply.results:
        action = enum_name(result, "action", "APPLY_ACTION_")
        print(f"{action} {result.experiment_id}")
        if action == "created" and not dry_run:
            continue
        for change in result.changes:
            if action == "created":
                print(f"  {change.field}: {change.new_value or NONE}")
            else:
                print(f"  {change.field}: {change.old_value or NONE} -> {change.new_value or NONE}")
    if dry_run:
        print("dry run: nothing was written")


def print_deleted(experiment_id: str, output: str) -> None:
    """The confirmation of a delete."""
    if output == "table":
        print(f"deleted {experiment_id}")
    else:
        emit({"experiment_id": experiment_id, "deleted": True}, output)


def describe_violations(headline: str, violations: Sequence[FieldViolation]) -> str:
    """`error: ...` then one indented line per bad field."""
    return "\n".join([headline, *(f"  {v.field}: {v.description}" for v in violations)])


def describe_rpc_error(error: grpc.RpcError, field_map: Callable[[str], str] = str) -> str:
    """One readable message: code, message and each field violation (`field_map` renames fields)."""
    code = error.code().name if hasattr(error, "code") else "UNKNOWN"
    headline = f"error: {code}: {error.details() if hasattr(error, 'details') else error}"
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    violations = []
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(field_map(v.field), v.description) for v in bad.field_violations]
    if violations:  # the message only repeats them (InvalidArgumentError's summary)
        headline = f"error: {code}: {len(violations)} invalid field(s)"
    return describe_violations(headline, violations)
