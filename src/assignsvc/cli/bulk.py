"""`assignsvc export` and `assignsvc preassign`: bulk transfers with a progress bar.

export writes CSV (RFC 4180, header row), JSON Lines or one JSON array. With --output
it keeps FILE.export-state beside the file (the last chunk's resume token and the
file's length after it), updated after every chunk once the rows are on disk, so an
interrupted export continues with --resume: the file is cut back to that length and
the export resumes after that chunk, with no row missing or repeated.

preassign reads the whole CSV file first and uploads nothing if any line is bad.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.cli import output as out
from assignsvc.config import ConfigError
from assignsvc.documents.experiment_file import parse_time
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bgrpc
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

FORMATS = ("csv", "jsonl", "json")
BASE_COLUMNS = ("participant_id", "arm_id", "bucket_version", "first_seen")
PREASSIGN_BATCH = 5000


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, what: str, total: int | None, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._what, self._total = what, total
        self._start = self._last = time.monotonic()
        self.done = 0

    def advance(self, count: int) -> None:
        """Count `count` more items; redraw at most 10 times a second."""
        self.done += count
        now = time.monotonic()
        if self._enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        line = f"{self._what}: {self.done:,} rows, {rate:,.0f} rows/s"
        if self._total:
            left = max(self._total - self.done, 0)
            eta = left / rate if rate else 0
            line += f", {min(self.done / self._total, 1):.0%} of ~{self._total:,}, ETA {eta:.0f}s"
        self._stream.write("\r" + line.ljust(79))
        self._stream.flush()

    def finish(self) -> None:
        """Draw the final figures and end the line."""
        if self._enabled:
            self._draw(time.monotonic())
            self._stream.write("\n")


# --- export -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportState:
    """What --resume needs: which export, its last token, and the file length after it."""

    experiment: str
    format: str
    filters: dict[str, Any]
    resume_token: str
    offset: int
    rows: int
    strata_columns: list[str] | None  # the CSV header's strata columns (None: one JSON `strata` column)

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old state or the new one, never half)."""
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, path)


def _iso(timestamp: Any) -> str:
    moment = datetime.fromtimestamp(timestamp.seconds + timestamp.nanos / 1e9, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RowWriter:
    """Writes chunks of rows in one of FORMATS; `start`/`end` frame a whole export."""

    def __init__(self, stream: IO[str], fmt: str, strata_columns: Sequence[str] | None) -> None:
        """strata_columns None (a deleted experiment: no stats to name them): CSV gets one
        `strata` column holding each row's strata as JSON."""
        self._stream, self._format = stream, fmt
        self._strata = list(strata_columns) if strata_columns is not None else None
        self._csv = csv.writer(stream, lineterminator="\r\n") if fmt == "csv" else None
        self.rows_written = 0

    def start(self) -> None:
        """Header (CSV) or opening bracket (JSON)."""
        if self._csv is not None:
            strata = ["strata"] if self._strata is None else [f"strata.{name}" for name in self._strata]
            self._csv.writerow([*BASE_COLUMNS, *strata])
        elif self._format == "json":
            self._stream.write("[")

    def write(self, rows: Sequence[bpb.ExportedAssignment]) -> None:
        """One chunk of rows."""
        for row in rows:
            first_seen = _iso(row.first_seen_time)
            if self._csv is not None:
                strata = (
                    [json.dumps(dict(row.strata), ensure_ascii=False) if row.strata else ""]
                    if self._strata is None
                    else [row.strata.get(name, "") for name in self._strata]
                )
                self._csv.writerow([row.participant_id, row.arm_id, row.bucket_version, first_seen, *strata])
                self.rows_written += 1
                continue
            record: dict[str, Any] = {
                "participant_id": row.participant_id,
                "arm_id": row.arm_id,
                "bucket_version": row.bucket_version,
                "first_seen": first_seen,
            }
            if row.strata:
                record["strata"] = dict(row.strata)
            text = json.dumps(record, ensure_ascii=False)
            if self._format == "json":
                self._stream.write(("\n" if self.rows_written == 0 else ",\n") + text)
            else:
                self._stream.write(text + "\n")
            self.rows_written += 1

    def end(self) -> None:
        """Closing bracket (JSON)."""
        if self._format == "json":
            self._stream.write("\n]\n" if self.rows_written else "]\n")


def _export_request(args: argparse.Namespace) -> bpb.ExportAssignmentsRequest:
    request = bpb.ExportAssignmentsRequest(
        experiment_id=args.experiment, arm_id=args.arm or "", chunk_size=args.chunk_size
    )
    if args.bucket_version is not None:
        request.bucket_version = args.bucket_version
    if args.since:
        request.first_seen_since.CopyFrom(timestamp_flag(args.since, "--since"))
    if args.until:
        request.first_seen_until.CopyFrom(timestamp_flag(args.until, "--until"))
    return request


def timestamp_flag(spec: str, flag: str) -> Timestamp:
    """An RFC 3339 flag value as a Timestamp (ConfigError naming the flag if it is not one)."""
    try:
        ms = parse_time(spec)
    except ValueError as exc:
        raise ConfigError(f"{flag} {exc}") from None
    timestamp = Timestamp()
    timestamp.FromMilliseconds(ms)
    return timestamp


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"arm": args.arm, "bucket_version": args.bucket_version, "since": args.since, "until": args.until}


def _expected_rows_and_strata(
    channel: grpc.Channel, args: argparse.Namespace, timeout: float
) -> tuple[int | None, list[str] | None]:
    """The rows the export will have (from the exact per-arm counters; filters make it an
    upper bound) and the strata attribute names, for the progress bar and CSV header.
    (None, None) for a deleted experiment: it has no stats, but it can still be exported."""
    stub = egrpc.ExperimentServiceStub(channel)
    try:
        current = stub.GetExperimentStats(
            espb.GetExperimentStatsRequest(experiment_id=args.experiment), timeout=timeout
        )
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:  # deleted, or unknown: the export itself will tell
            return None, None
        raise
    versions = [args.bucket_version] if args.bucket_version is not None else range(current.bucket_version + 1)
    total, names = 0, set()
    for version in versions:
        stats = stub.GetExperimentStats(
            espb.GetExperimentStatsRequest(experiment_id=args.experiment, bucket_version=version), timeout=timeout
        )
        total += stats.total_assignments
        names |= {name for stratum in stats.strata for name in stratum.attributes}
    return total, sorted(names)


def export(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> int:
    """`assignsvc export`: see the module docstring."""
    if args.resume and not args.output:
        raise ConfigError("--resume needs --output FILE (the export state lives beside it)")
    total, strata_columns = _expected_rows_and_strata(channel, args, timeout)
    request = _export_request(args)
    state_path = Path(f"{args.output}.export-state") if args.output else None
    state = _resume_state(state_path, args) if state_path is not None else None
    if state is not None:
        request.resume_token = state.resume_token
        strata_columns = state.strata_columns  # the header already written decides the columns
    progress = Progress(f"export {args.experiment}", total)
    stream = _open_output(args.output, state)
    try:
        writer = RowWriter(stream, args.format, strata_columns)
        if state is None:
            writer.start()
        else:
            writer.rows_written = progress.done = state.rows
        for chunk in bgrpc.BulkAssignmentServiceStub(channel).ExportAssignments(request):
            writer.write(chunk.assignments)
            progress.advance(len(chunk.assignments))
            if state_path is not None:
                stream.flush()
                os.fsync(stream.fileno())
                ExportState(
                    args.experiment,
                    args.format,
                    _filters(args),
                    chunk.resume_token,
                    stream.tell(),
                    writer.rows_written,
                    strata_columns,
                ).save(state_path)
        writer.end()
    finally:
        if stream is not sys.stdout:
            stream.close()
    progress.finish()
    if state_path is not None:
        state_path.unlink(missing_ok=True)
        print(f"exported {writer.rows_written} rows to {args.output}", file=sys.stderr)
    return 0


def _resume_state(path: Path, args: argparse.Namespace) -> ExportState | None:
    """The state to resume from (--resume), or None for a fresh export."""
    if not args.resume:
        if path.exists():
            raise ConfigError(
                f"{args.output} is an interrupted export: continue it with --resume, or delete {path} to start again"
            )
        return None
    if not path.exists():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    state = ExportState(**json.loads(path.read_text()))
    if (state.experiment, state.format, state.filters) != (args.experiment, args.format, _filters(args)):
        raise ConfigError(
            f"{path} belongs to another export ({state.experiment}, {state.format}, "
            f"{state.filters}): resume it with the same arguments"
        )
    return state


def _open_output(output: str | None, state: ExportState | None) -> IO[str]:
    if output is None:
        return sys.stdout
    if state is None:
        return open(output, "w", encoding="utf-8", newline="")
    stream = open(output, "r+", encoding="utf-8", newline="")  # noqa: SIM115 - closed by export()
    stream.truncate(state.offset)  # rows after the last saved token are written again
    stream.seek(state.offset)
    return stream


# --- preassign ----------------------------------------------------------------------------


def read_participants(path: str, id_column: str, strata_columns: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """Every (participant, strata) of a CSV file with a header row; ConfigError naming the
    first bad line (nothing is uploaded from a file with one)."""
    with open(path, encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        missing = [c for c in (id_column, *strata_columns) if c not in header]
        if missing:
            raise ConfigError(f"{path}: no column {', '.join(map(repr, missing))} in the header ({', '.join(header)})")
        participants = []
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise ConfigError(f"{path}, line {line}: expected {len(header)} fields")
            participant = row[id_column].strip()
            if not participant:
                raise ConfigError(f"{path}, line {line}: empty {id_column!r}")
            participants.append((participant, {c: row[c] for c in strata_columns}))
    if not participants:
        raise ConfigError(f"{path}: no participants")
    return participants


def _messages(
    experiment: str, participants: Sequence[tuple[str, dict[str, str]]], progress: Progress, sent_order: list[int]
) -> Iterator[bpb.PreassignParticipantsRequest]:
    """Batches of PREASSIGN_BATCH rows, grouped by stratum within each batch; sent_order
    collects the file index of each participant in the order sent (errors count in it)."""
    for start in range(0, len(participants), PREASSIGN_BATCH):
        groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for index in range(start, min(start + PREASSIGN_BATCH, len(participants))):
            groups.setdefault(tuple(sorted(participants[index][1].items())), []).append(index)
        message = bpb.PreassignParticipantsRequest(experiment_id=experiment if start == 0 else "")
        for strata, indices in groups.items():
            message.groups.add(strata=dict(strata), participant_ids=[participants[i][0] for i in indices])
            sent_order += indices
        yield message
        progress.advance(sum(len(indices) for indices in groups.values()))


def preassign(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> int:
    """`assignsvc preassign`: upload a CSV file, print the per-stratum counts."""
    strata_columns = [c.strip() for c in (args.strata_columns or "").split(",") if c.strip()]
    try:
        participants = read_participants(args.file, args.id_column, strata_columns)
    except ConfigError as exc:  # a file that fails validation: exit 1, as `apply` (2 is bad usage)
        print(f"assignsvc: {exc}", file=sys.stderr)
        return 1
    progress = Progress(f"preassign {args.experiment}", len(participants))
    stub = bgrpc.BulkAssignmentServiceStub(channel)
    sent_order: list[int] = []
    try:
        reply = stub.PreassignParticipants(
            _messages(args.experiment, participants, progress, sent_order), timeout=max(timeout, 600.0)
        )
    except grpc.RpcError as error:
        progress.finish()
        print(out.describe_rpc_error(error, _line_of(sent_order, args.file)), file=sys.stderr)
        return 1
    progress.finish()
    out.print_preassign(reply, args.output)
    return 0


def _line_of(sent_order: Sequence[int], path: str) -> Callable[[str], str]:
    """Names a server field like participants[41].strata by its file line (the header is line 1)."""

    def field(name: str) -> str:
        if name.startswith("participants[") and "]" in name:
            index = name[len("participants[") : name.index("]")]
            if index.isdigit() and int(index) < len(sent_order):
                return f"{path}, line {sent_order[int(index)] + 2}{name[name.index(']') + 1 :]}"
        return name

    return field


def register(
    sub: Any, connection: argparse.ArgumentParser, client: argparse.ArgumentParser, wrap: Callable[..., Any]
) -> None:
    """Add the export and preassign subcommands; `wrap` turns a command into a client runner.
    export takes --output FILE (what its users asked for), so not the -o of `client`."""
    exp = sub.add_parser(
        "export",
        parents=[connection],
        help="export every stored assignment of an experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exp.add_argument("experiment")
    exp.add_argument("--format", choices=FORMATS, default="csv")
    exp.add_argument("--output", metavar="FILE", help="write here (default: stdout); needed for --resume")
    exp.add_argument("--resume", action="store_true", help="continue the interrupted export into FILE")
    exp.add_argument("--arm", help="only this arm id")
    exp.add_argument("--bucket-version", type=int, help="only this bucket version (default: all)")
    exp.add_argument("--since", help="only first seen at or after this RFC 3339 time")
    exp.add_argument("--until", help="only first seen before this RFC 3339 time")
    exp.add_argument("--chunk-size", type=int, default=5000, help="rows per message (1-10000)")
    exp.set_defaults(run=wrap(export))
    pre = sub.add_parser(
        "preassign",
        parents=[client],
        help="randomize a CSV list of participants ahead of time (PREASSIGNED experiments; balanced per stratum)",
    )
    pre.add_argument("experiment")
    pre.add_argument("file", metavar="FILE.csv", help="CSV with a header row")
    pre.add_argument("--id-column", default="participant_id")
    pre.add_argument("--strata-columns", help="comma-separated columns to balance within, e.g. country,plan")
    pre.set_defaults(run=wrap(preassign))
