"""The transcoded v1 API: each annotated RPC served over HTTP/JSON by calling the gRPC
server of this process, as Envoy's gRPC-JSON transcoder or grpc-gateway would.

Each call runs the handler the gRPC server registered, so every rule, the interceptor's
included (keys, scopes, rate limits, tenant isolation, drain, RPC metrics, audit log),
applies exactly as to a gRPC caller: nothing is implemented twice. A unary RPC calls that
handler in process (api.local_calls); a streaming one goes through this process's own
gRPC server over a loopback channel.
Bodies and responses are the proto3 JSON mapping (unknown fields and wrong types are
400); path variables, then query parameters (for fields outside the body), fill the
request. A client-streaming RPC reads its body as NDJSON (one request a line; CSV for
PreassignParticipants); a server-streaming one answers NDJSON (`{"result": ...}` lines,
a final `{"error": ...}` if it fails midway), or CSV for ExportAssignments when asked
with `Accept: text/csv`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2

from assignsvc.api.http.app import HttpEdge
from assignsvc.api.http.auth import API_KEY_HEADER, DATASOURCE_HEADER, authenticate
from assignsvc.api.http.body import CSV_TYPE, JSON_TYPES, NDJSON_TYPES, lines, read_json, refuse_media_type
from assignsvc.api.http.errors import (
    HttpRefusalError,
    bad_request,
    status_from_grpc,
    status_from_response,
    status_json,
    status_response,
)
from assignsvc.api.http.routes import Route, all_routes
from assignsvc.api.local_calls import LocalAbort, LocalUnary
from assignsvc.app.access import KeyRing
from assignsvc.logs import REQUEST_ID

UNARY_TIMEOUT_S = 60.0
NDJSON = "application/x-ndjson"
_PREASSIGN = "PreassignParticipants"
_UPLOAD = "UploadSavedGroupIds"
_CSV_METHODS = (_PREASSIGN, _UPLOAD)
CSV_BATCH = 1000
_EXPORT = "ExportAssignments"
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def add_routes(edge: HttpEdge, target: str) -> grpc.aio.Channel:
    """Serve every annotated RPC over HTTP through a channel to `target`; the channel (to close)."""
    channel = grpc.aio.insecure_channel(target)
    for route in all_routes():
        local = edge.use_cases.local_unaries.get(route.full_method)
        call = _Call(channel, route, edge.use_cases.key_ring, local)
        edge.app.router.add_route(route.verb, route.aiohttp_path, call.handle)
    return channel


def _message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


class _Call:
    """The HTTP handler of one route."""

    def __init__(
        self, channel: grpc.aio.Channel, route: Route, key_ring: KeyRing | None, local: LocalUnary | None = None
    ) -> None:
        self._route = route
        self._key_ring = key_ring
        self._local = local  # the unary handler, called in process (else through the channel)
        method = route.method
        self._request_class = _message_class(method.input_type)
        response_class = self._response_class = _message_class(method.output_type)
        path, ser, de = route.full_method, self._request_class.SerializeToString, response_class.FromString
        if method.client_streaming and method.server_streaming:
            self._stub: Callable[..., Any] = channel.stream_stream(path, ser, de)
        elif method.client_streaming:
            self._stub = channel.stream_unary(path, ser, de)
        elif method.server_streaming:
            self._stub = channel.unary_stream(path, ser, de)
        else:
            self._stub = channel.unary_unary(path, ser, de)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method = self._route.method
        metadata = _metadata(request)
        refused: list[HttpRefusalError] = []  # a bad line, seen by the task gRPC reads requests in
        if_match = False
        try:
            if method.client_streaming:
                return await self._client_streamed(request, metadata, refused)
            message = await self._request(request)
            if_match = _if_match(request, message, self._route.body)
            if method.server_streaming:
                return await self._stream_out(request, self._stub(message, metadata=metadata), refused)
            if self._local is not None:
                reply = await self._local(message.SerializeToString(), metadata, UNARY_TIMEOUT_S)
                return _json(self._response_class.FromString(reply))
            return _json(await self._stub(message, metadata=metadata, timeout=UNARY_TIMEOUT_S))
        except LocalAbort as ended:
            return _refused(status_from_grpc(ended.code.value[0], ended.details, ended.trailing_metadata), if_match)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
            if refused:  # gRPC cancelled the call because a line of the body was bad
                raise refused[0] from None
            if isinstance(error, asyncio.CancelledError):
                raise
            status = status_from_grpc(error.code().value[0], error.details(), error.trailing_metadata())
            return _refused(status, if_match)

    async def _client_streamed(
        self, request: web.Request, metadata: list[tuple[str, str]], refused: list[HttpRefusalError]
    ) -> web.StreamResponse:
        """A client-streaming RPC, its requests read from the body as they arrive."""
        # Refused before the call opens: a server that ends a client stream while its
        # body is still being sent leaves the client INTERNAL ("Internal error from
        # Core"), not the refusal. The gRPC interceptor checks the key again.
        refusal = authenticate(request, self._key_ring, self._route.full_method)
        if refusal is not None:
            return status_response(refusal.status)
        if not (self._route.method.name in _CSV_METHODS and request.content_type == CSV_TYPE):
            refuse_media_type(request, (*NDJSON_TYPES, *JSON_TYPES))
        pump = _BodyPump(self._streamed_requests(request))
        try:
            requests = _keeping(pump.messages(), refused)
            if self._route.method.server_streaming:
                return await self._stream_out(request, self._stub(requests, metadata=metadata), refused)
            return _json(await self._stub(requests, metadata=metadata, timeout=UNARY_TIMEOUT_S))
        finally:
            await pump.close()

    async def _request(self, request: web.Request) -> Message:
        """The request message: body (as the binding says), query parameters, then path variables."""
        message = self._request_class()
        body_field = self._route.body
        if body_field:
            body = await read_json(request, empty={})
            target = message if body_field == "*" else getattr(message, body_field)
            _parse(body, target, "" if body_field == "*" else body_field)
        if body_field != "*":
            _parse(_query(request, self._route.method.input_type), message, "")
        self._bind_path(request, message)
        return message

    def _bind_path(self, request: web.Request, message: Message) -> None:
        for variable in self._route.variables:
            *parents, leaf = variable.split(".")
            target = message
            for name in parents:
                target = getattr(target, name)
            setattr(target, leaf, request.match_info[variable.replace(".", "__")])

    async def _streamed_requests(self, request: web.Request) -> AsyncIterator[Message]:
        """Request messages from an NDJSON body (or CSV, for PreassignParticipants and UploadSavedGroupIds)."""
        if self._route.method.name == _PREASSIGN and request.content_type == CSV_TYPE:
            async for message in self._csv_preassign(request):
                yield message
            return
        if self._route.method.name == _UPLOAD and request.content_type == CSV_TYPE:
            async for message in self._csv_ids(request):
                yield message
            return
        async for line in lines(request):
            try:
                document = json.loads(line)
            except ValueError as exc:
                raise HttpRefusalError(bad_request("body", f"a line is not valid JSON: {exc}")) from None
            message = self._request_class()
            _parse(document, message, "")
            self._bind_path(request, message)
            yield message

    async def _csv_preassign(self, request: web.Request) -> AsyncIterator[Message]:
        """CSV with a participant_id column; every other column is a stratum. 1000 rows a message."""
        header: list[str] | None = None
        batch: dict[tuple[tuple[str, str], ...], list[str]] = {}
        count = 0
        async for line in lines(request):
            (row,) = csv.reader([line.decode("utf-8", "replace")])
            if header is None:
                header = row
                if "participant_id" not in header:
                    raise HttpRefusalError(bad_request("body", "the CSV header must name a participant_id column"))
                continue
            values = dict(zip(header, row, strict=False))
            participant = values.pop("participant_id", "")
            batch.setdefault(tuple(sorted(values.items())), []).append(participant)
            count += 1
            if count >= CSV_BATCH:
                yield self._preassign_message(request, batch)
                batch, count = {}, 0
        if batch or header is None:
            yield self._preassign_message(request, batch)

    async def _csv_ids(self, request: web.Request) -> AsyncIterator[Message]:
        """CSV of ids: an `id` column (else the first); query parameters (mode, etag) fill the first message."""
        first = self._request_class()
        _parse(_query(request, self._route.method.input_type), first, "")
        column: int | None = None
        ids: list[str] = []
        pending: Message | None = first
        async for line in lines(request):
            (row,) = csv.reader([line.decode("utf-8", "replace")])
            if column is None:
                column = row.index("id") if "id" in row else 0
                continue
            if column < len(row) and row[column]:
                ids.append(row[column])
            if len(ids) >= CSV_BATCH:
                yield self._ids_message(request, pending, ids)
                pending, ids = None, []
        if ids or pending is not None:
            yield self._ids_message(request, pending, ids)

    def _ids_message(self, request: web.Request, message: Message | None, ids: list[str]) -> Message:
        message = message if message is not None else self._request_class()
        message.ids.extend(ids)  # type: ignore[attr-defined]
        self._bind_path(request, message)
        return message

    def _preassign_message(self, request: web.Request, batch: dict[tuple[tuple[str, str], ...], list[str]]) -> Message:
        message = self._request_class()
        for strata, participants in batch.items():
            group = message.groups.add()  # type: ignore[attr-defined]
            group.strata.update(dict(strata))
            group.participant_ids.extend(participants)
        self._bind_path(request, message)
        return message

    async def _stream_out(self, request: web.Request, call: Any, refused: list[HttpRefusalError]) -> web.StreamResponse:
        """NDJSON lines (or CSV for an export asked as text/csv); headers go once the first reply is in."""
        as_csv = self._route.method.name == _EXPORT and CSV_TYPE in request.headers.get("Accept", "")
        response = web.StreamResponse(headers={"Content-Type": CSV_TYPE if as_csv else NDJSON})
        try:
            async for reply in call:
                if not response.prepared:
                    await response.prepare(request)
                    if as_csv:
                        await response.write(b"participant_id,arm_id,bucket_version,first_seen_time,strata\n")
                await response.write(_csv_rows(reply) if as_csv else _line({"result": _dict(reply)}))
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and not (refused and response.prepared):
                raise  # a bad body line before any answer: the handler answers 400
            if isinstance(error, grpc.aio.AioRpcError) and not refused:
                status = status_from_grpc(error.code().value[0], error.details(), error.trailing_metadata())
            else:
                status = status_from_response(refused[0].response)
            if not response.prepared:
                return status_response(status)
            await response.write(_line({"error": status_json(status)}))
        if not response.prepared:
            await response.prepare(request)
        await response.write_eof()
        return response


class _BodyPump:
    """Reads a streamed body in a task of its own, from which gRPC's request consumer takes
    messages through a small queue. The handler stops that read before it returns: a call
    that ended early (refused, failed) would otherwise leave a read of the body pending in
    gRPC's consumer task, and aiohttp, draining the rest of the body, fails the request with
    a 500 ("readany() called while another coroutine is already waiting")."""

    def __init__(self, source: AsyncIterator[Message]) -> None:
        self._queue: asyncio.Queue[Message | Exception | None] = asyncio.Queue(maxsize=16)
        self._task = asyncio.create_task(self._run(source), name="assignsvc-http-body")

    async def _run(self, source: AsyncIterator[Message]) -> None:
        try:
            async for message in source:
                await self._queue.put(message)
        except Exception as exc:  # a bad line (HttpRefusalError) or a broken body: raised where it is read
            await self._queue.put(exc)
            return
        await self._queue.put(None)

    async def messages(self) -> AsyncIterator[Message]:
        """The body's messages, in order; what the read raised is raised here."""
        while (item := await self._queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item

    async def close(self) -> None:
        """Stop reading the body, and end `messages` for a consumer still waiting on it."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


async def _keeping(requests: AsyncIterator[Message], refused: list[HttpRefusalError]) -> AsyncIterator[Message]:
    """`requests`, keeping a refusal (bad line) for the handler: gRPC only sees the call fail."""
    try:
        async for message in requests:
            yield message
    except HttpRefusalError as refusal:
        refused.append(refusal)
        raise


def _if_match(request: web.Request, message: Message, body: str) -> bool:
    """An If-Match header as the request's etag (top level, else the body message's): a stale
    one is then 412 instead of 409. True when one was applied."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return False
    etag = header.removeprefix("W/").strip('"')
    for target in (message, getattr(message, body, None) if body not in ("", "*") else None):
        if target is not None and "etag" in target.DESCRIPTOR.fields_by_name:
            setattr(target, "etag", etag)  # noqa: B010 - a field found by its descriptor
            return True
    return False


def _refused(status: Any, if_match: bool) -> web.Response:
    """The Status answer of a refused call; 412 for ABORTED when an If-Match header named
    the etag (the header's precondition failed, RFC 9110)."""
    response = status_response(status)
    if status.code == code_pb2.ABORTED and if_match:
        response.set_status(412)
    return response


def _metadata(request: web.Request) -> list[tuple[str, str]]:
    """The gRPC metadata of the call: the caller's key and datasource, and the request id."""
    out = [("x-request-id", REQUEST_ID.get())]
    for header, key in ((API_KEY_HEADER, "x-api-key"), (DATASOURCE_HEADER, "datasource-id")):
        value = request.headers.get(header)
        if value and value.isascii() and value.isprintable():
            out.append((key, value))
    return out


def _parse(document: Any, message: Message, field: str) -> None:
    """Merge a JSON document into a message (proto3 JSON mapping); 400 for what it cannot hold."""
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise HttpRefusalError(bad_request(field or "body", str(exc))) from None


def _query(request: web.Request, descriptor: Descriptor) -> dict[str, Any]:
    """Query parameters as a JSON document (dotted names nest; repeated fields take every value)."""
    document: dict[str, Any] = {}
    for name in set(request.query.keys()):
        values = request.query.getall(name)
        *parents, leaf = name.split(".")
        target, desc = document, descriptor
        for part in parents:
            field = desc.fields_by_name.get(part) or desc.fields_by_camelcase_name.get(part)
            if field is None or field.message_type is None:
                raise HttpRefusalError(bad_request(name, "is not a field of this request"))
            target = target.setdefault(part, {})
            desc = field.message_type
        field = desc.fields_by_name.get(leaf) or desc.fields_by_camelcase_name.get(leaf)
        if field is None:
            raise HttpRefusalError(bad_request(name, "is not a field of this request"))
        converted = [_scalar(field, value, name) for value in values]
        target[leaf] = converted if field.is_repeated else converted[-1]
    return document


def _scalar(field: FieldDescriptor, value: str, name: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value.lower() not in _BOOLS:
            raise HttpRefusalError(bad_request(name, f"must be true or false, got {value!r}"))
        return _BOOLS[value.lower()]
    return value  # the JSON mapping reads numbers, enums, timestamps and field masks from strings


def _dict(message: Message) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message))


def _json(message: Message) -> web.Response:
    return web.Response(body=json.dumps(_dict(message)).encode(), content_type="application/json")


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\n"


def _csv_rows(reply: Message) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in reply.assignments:  # type: ignore[attr-defined]
        first_seen = row.first_seen_time.ToJsonString() if row.HasField("first_seen_time") else ""
        strata = json.dumps(dict(row.strata), sort_keys=True) if row.strata else ""
        writer.writerow([row.participant_id, row.arm_id, row.bucket_version, first_seen, strata])
    return out.getvalue().encode()
