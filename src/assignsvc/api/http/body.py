"""Request bodies: JSON with its media type, size and time bounded; NDJSON and CSV read line by line.

A body a client sends is never trusted to be small or quick: JSON past MAX_BODY_BYTES is
413, one not fully sent within BODY_TIMEOUT_S is 408, a wrong media type is 415, and bad
JSON is 400 with a field violation, as gRPC would answer a malformed message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2

from assignsvc.api.convert import attributes_from_pb
from assignsvc.api.http.app import BODY_TIMEOUT_S
from assignsvc.api.http.errors import HttpRefusalError, bad_request, status_of, status_response
from assignsvc.errors import InvalidArgumentError

JSON_TYPES = ("application/json", "")
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-seq")
CSV_TYPE = "text/csv"
# One line of a streamed body (one request message, one CSV row).
MAX_LINE_BYTES = 1024 * 1024


def refuse_media_type(request: web.Request, accepted: tuple[str, ...]) -> None:
    """415 unless the body's Content-Type is one of `accepted` ("" = none sent)."""
    if request.content_type not in accepted and not (
        request.content_type == "application/octet-stream" and "" in accepted
    ):
        shown = ", ".join(a for a in accepted if a) or "none"
        status = status_of(code_pb2.INVALID_ARGUMENT, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type must be one of: {shown}")
        response = status_response(status)
        response.set_status(415)
        raise HttpRefusalError(response)


async def read_bytes(request: web.Request) -> bytes:
    """The whole body (at most the application's client_max_size: else 413), within BODY_TIMEOUT_S (else 408)."""
    try:
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
    except TimeoutError:
        response = status_response(
            status_of(
                code_pb2.DEADLINE_EXCEEDED, "BODY_TIMEOUT", f"the body was not received within {BODY_TIMEOUT_S:g} s"
            )
        )
        response.set_status(408)
        raise HttpRefusalError(response) from None


async def read_json(request: web.Request, *, empty: Any = None, strict: bool = True) -> Any:
    """The JSON body (`empty` when there is none); 400/408/413/415 as the module says.
    strict=False reads JSON whatever the Content-Type (Evidential's routes do)."""
    if not request.can_read_body:
        return empty
    if strict:
        refuse_media_type(request, JSON_TYPES)
    raw = await read_bytes(request)
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpRefusalError(bad_request("body", f"is not valid JSON: {exc}")) from None


async def lines(request: web.Request) -> AsyncIterator[bytes]:
    """The body's non-empty lines, as they arrive (each within BODY_TIMEOUT_S, at most MAX_LINE_BYTES)."""
    content = request.content
    while True:
        try:
            line = await asyncio.wait_for(content.readuntil(b"\n"), BODY_TIMEOUT_S)
        except TimeoutError:
            raise HttpRefusalError(bad_request("body", f"no line received within {BODY_TIMEOUT_S:g} s")) from None
        except ValueError:  # a line longer than the stream's limit
            raise HttpRefusalError(bad_request("body", f"a line is longer than {MAX_LINE_BYTES} bytes")) from None
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            raise HttpRefusalError(bad_request("body", f"a line is longer than {MAX_LINE_BYTES} bytes"))
        if line.strip():
            yield line


def attributes(document: dict[str, Any], field: str) -> dict[str, Any]:
    """Participant attributes from JSON under the gRPC edge's own rule (api.convert: 16 KiB,
    10 levels, finite numbers): InvalidArgumentError otherwise, naming `field`."""
    struct = struct_pb2.Struct()
    try:
        json_format.ParseDict(document, struct)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise InvalidArgumentError.single(field, f"must be JSON-compatible: {exc}") from None
    return attributes_from_pb(struct, field)
