"""`assignsvc groups ...`: saved groups from the command line, big id files streamed in chunks.

Split from cli.py to keep each module one idea; cli.py registers these commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from assignsvc.cli import output as out
from assignsvc.config import ConfigError
from assignsvc.documents.experiment_file import format_time
from assignsvc.v1 import saved_group_service_pb2 as gpb
from assignsvc.v1 import saved_group_service_pb2_grpc as ggrpc

CHUNK = 10_000  # ids per message: the server's per-message bound
Command = Callable[[grpc.Channel, argparse.Namespace, float], int | None]


def read_ids(args: argparse.Namespace) -> list[str]:
    """--ids a,b,c and/or --ids-file FILE (one id per line, '-' = stdin; blank lines skipped)."""
    ids = [i.strip() for i in (args.ids or "").split(",") if i.strip()]
    if args.ids_file:
        try:
            text = sys.stdin.read() if args.ids_file == "-" else Path(args.ids_file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {args.ids_file}: {exc}") from None
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    return ids


def print_groups(messages: list[Any], output: str, *, as_list: bool) -> None:
    """Saved groups as a table, JSON or YAML."""
    if output != "table":
        docs = [out.as_dict(m) for m in messages]
        out.emit(docs if as_list else docs[0], output)
        return
    rows = [[m.id, m.name, str(m.size), m.etag, format_time(m.update_time.ToMilliseconds())] for m in messages]
    print(out.table(["ID", "NAME", "SIZE", "ETAG", "UPDATED"], rows, right=[2]))


def _upload(
    stub: ggrpc.SavedGroupServiceStub, group_id: str, ids: list[str], *, mode: gpb.UploadMode, etag: str, timeout: float
) -> Any:
    def messages() -> Iterator[gpb.UploadSavedGroupIdsRequest]:
        yield gpb.UploadSavedGroupIdsRequest(saved_group_id=group_id, mode=mode, etag=etag, ids=ids[:CHUNK])
        for start in range(CHUNK, len(ids), CHUNK):
            yield gpb.UploadSavedGroupIdsRequest(ids=ids[start : start + CHUNK])

    return stub.UploadSavedGroupIds(messages(), timeout=max(timeout, 1.0 + len(ids) / 20_000))


def _create(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = ggrpc.SavedGroupServiceStub(channel)
    ids = read_ids(args)
    first = ids if len(ids) <= CHUNK else []
    request = gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id=args.id, name=args.name or ""), ids=first)
    group = stub.CreateSavedGroup(request, timeout=timeout).saved_group
    if len(ids) > CHUNK:  # the big list streams in, conditional on the group just created
        group = _upload(stub, args.id, ids, mode=gpb.UPLOAD_MODE_REPLACE, etag=group.etag, timeout=timeout).saved_group
    print_groups([group], args.output, as_list=False)


def _get(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    reply = ggrpc.SavedGroupServiceStub(channel).GetSavedGroup(
        gpb.GetSavedGroupRequest(saved_group_id=args.id), timeout=timeout
    )
    print_groups([reply.saved_group], args.output, as_list=False)


def _list(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    stub = ggrpc.SavedGroupServiceStub(channel)
    groups = out.all_pages(
        lambda token: stub.ListSavedGroups(
            gpb.ListSavedGroupsRequest(page_size=1000, page_token=token), timeout=timeout
        ),
        "saved_groups",
    )
    print_groups(groups, args.output, as_list=True)


def _change(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    """add / remove: inline up to 10000 ids; add streams more; replace always streams."""
    stub = ggrpc.SavedGroupServiceStub(channel)
    ids = read_ids(args)
    if args.action == "replace" or (args.action == "add" and len(ids) > CHUNK):
        mode = gpb.UPLOAD_MODE_REPLACE if args.action == "replace" else gpb.UPLOAD_MODE_ADD
        group = _upload(stub, args.id, ids, mode=mode, etag=args.etag or "", timeout=timeout).saved_group
    else:
        if len(ids) > CHUNK:
            raise ConfigError(f"groups remove: at most {CHUNK} ids at a time (or use replace)")
        request = gpb.UpdateSavedGroupRequest(saved_group_id=args.id, etag=args.etag or "")
        getattr(request, "add_ids" if args.action == "add" else "remove_ids").extend(ids)
        group = stub.UpdateSavedGroup(request, timeout=timeout).saved_group
    print_groups([group], args.output, as_list=False)


def _delete(channel: grpc.Channel, args: argparse.Namespace, timeout: float) -> None:
    ggrpc.SavedGroupServiceStub(channel).DeleteSavedGroup(
        gpb.DeleteSavedGroupRequest(saved_group_id=args.id, etag=args.etag or ""), timeout=timeout
    )
    if args.output == "table":
        print(f"deleted saved group {args.id}")
    else:
        out.emit({"saved_group_id": args.id, "deleted": True}, args.output)


def add_group_commands(sub: Any, client: argparse.ArgumentParser, wrap: Callable[[Command], Any]) -> None:
    """Register `groups create|get|list|add|remove|replace|delete`."""
    ids = argparse.ArgumentParser(add_help=False)
    ids.add_argument("--ids", help="comma-separated ids")
    ids.add_argument("--ids-file", help="file with one id per line ('-' = stdin); any size")
    etag = argparse.ArgumentParser(add_help=False)
    etag.add_argument("--etag", help="act only if the group still has this etag (else ABORTED)")

    create = sub.add_parser("create", parents=[client, ids], help="create a saved group")
    create.add_argument("id")
    create.add_argument("--name")
    create.set_defaults(run=wrap(_create))
    get = sub.add_parser("get", parents=[client], help="show a saved group (its size, not its ids)")
    get.add_argument("id")
    get.set_defaults(run=wrap(_get))
    sub.add_parser("list", parents=[client], help="list saved groups").set_defaults(run=wrap(_list))
    for action, text in (
        ("add", "add ids"),
        ("remove", "remove ids"),
        ("replace", "replace every id (streamed; all at once)"),
    ):
        change = sub.add_parser(action, parents=[client, ids, etag], help=text)
        change.add_argument("id")
        change.set_defaults(run=wrap(_change))
    delete = sub.add_parser("delete", parents=[client, etag], help="delete a saved group no condition names")
    delete.add_argument("id")
    delete.set_defaults(run=wrap(_delete))
